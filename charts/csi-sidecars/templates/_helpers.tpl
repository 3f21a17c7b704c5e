{{/*
Names, labels, images and checks shared by every template.
*/}}

{{- define "csi-sidecars.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "csi-sidecars.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A resource name: "<fullname>-<suffix>", at most 63 characters. */}}
{{- define "csi-sidecars.resourceName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "csi-sidecars.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" -}}
{{- end -}}

{{- define "csi-sidecars.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "csi-sidecars.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Labels of every object; with a component when one is given: (list $ "controller"). */}}
{{- define "csi-sidecars.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "csi-sidecars.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- if gt (len .) 1 }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: csi-sidecars
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
An image reference from (list $ .image). global.imageRegistry replaces the registry and keeps the
repository path; a digest wins over the tag; the csi-sidecars image's tag defaults to appVersion.
*/}}
{{- define "csi-sidecars.imageRef" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $registry := $root.Values.global.imageRegistry | default $image.registry | trimSuffix "/" -}}
{{- $ref := $image.repository -}}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $image.repository }}{{ end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $ref $image.digest -}}
{{- else -}}
{{- $tag := $image.tag | default (ternary $root.Chart.AppVersion "" (eq $image.repository $root.Values.image.repository)) -}}
{{- if $tag }}{{ printf "%s:%s" $ref $tag }}{{ else }}{{ $ref }}{{ end -}}
{{- end -}}
{{- end -}}

{{- define "csi-sidecars.image" -}}
{{- include "csi-sidecars.imageRef" (list . .Values.image) -}}
{{- end -}}

{{- define "csi-sidecars.serviceAccountName" -}}
{{- $root := index . 0 -}}
{{- $sa := index . 1 -}}
{{- if $sa.create -}}
{{- $sa.name | default (include "csi-sidecars.resourceName" (list $root (index . 2))) -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The driver's socket directory inside every container of the chart's pods. */}}
{{- define "csi-sidecars.socketDir" -}}/csi{{- end -}}
{{- define "csi-sidecars.socket" -}}/csi/csi.sock{{- end -}}

{{/* The node plugin directory on the host: <kubeletDir>/plugins/<driver>. */}}
{{- define "csi-sidecars.pluginDir" -}}
{{- printf "%s/plugins/%s" (.Values.kubeletDir | trimSuffix "/") .Values.driver.name -}}
{{- end -}}

{{/* Environment every container gets (the pod's identity, for Leases, events, the driver). */}}
{{- define "csi-sidecars.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: KUBE_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- end -}}

{{/* Leader election flags of a controller role: (list enabled .leaderElection). */}}
{{- define "csi-sidecars.leaderElectionArgs" -}}
{{- if index . 0 }}
- --leader-election
- {{ printf "--leader-election-lease-duration=%s" (index . 1).leaseDuration | quote }}
- {{ printf "--leader-election-renew-deadline=%s" (index . 1).renewDeadline | quote }}
- {{ printf "--leader-election-retry-period=%s" (index . 1).retryPeriod | quote }}
{{- end }}
{{- end -}}

{{/*
One csi-sidecars container: (dict "root" $ "role" "provisioner" "name" "csi-provisioner"
"values" .Values.controller.provisioner "args" (list ...) "base" $containerSecurityContext
"mounts" (list ...) "probePath" "/healthz"). extraArgs come last: a flag given twice wins last.
*/}}
{{- define "csi-sidecars.container" -}}
{{- $v := .values -}}
- name: {{ .name }}
  image: {{ include "csi-sidecars.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: [csi-sidecars, {{ .role }}]
  args:
    {{- range .args }}
    - {{ . | quote }}
    {{- end }}
    {{- range $v.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    {{- include "csi-sidecars.podEnv" . | nindent 4 }}
    {{- with $v.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: {{ .port | default "http" }}
      containerPort: {{ $v.httpPort }}
      protocol: TCP
  {{- if .probePath }}
  livenessProbe:
    httpGet:
      path: {{ .probePath }}
      port: {{ .port | default "http" }}
    initialDelaySeconds: 10
    timeoutSeconds: 10
    periodSeconds: 20
    failureThreshold: 3
  {{- with include "csi-sidecars.startupProbe" (list .root .probePath (.port | default "http")) }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- end }}
  {{- with .readinessPath }}
  readinessProbe:
    httpGet:
      path: {{ . }}
      port: {{ $.port | default "http" }}
    periodSeconds: 10
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml (mergeOverwrite (deepCopy .base) (deepCopy ($v.securityContext | default dict))) | nindent 4 }}
  {{- with .mounts }}
  volumeMounts:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/*
The sidecar containers of a pod, from a list of role entries (dicts with role, name, port,
values, args, mounts and optionally probePath and readinessPath; args without --csi-address
and --v, which each container gets from common and values.logLevel). Without a bundle, one
container per role (csi-sidecars.container). With .bundle.enabled, one container running
`csi-sidecars run --roles ...`: each role's flags (its extraArgs too) prefixed with
`--<role>.`, --csi-address and the highest --v once, every role's port under its own name (so
the metrics Services are the same), the first probe path of the roles on that role's port,
the union of their mounts. Arguments: dict root, entries, bundle, common, base.
*/}}
{{- define "csi-sidecars.sidecars" -}}
{{- $root := .root -}}
{{- if not .bundle.enabled }}
{{- range .entries }}
{{- $args := concat $.common (list (printf "--v=%d" (int .values.logLevel))) .args }}
{{- include "csi-sidecars.container" (dict "root" $root "role" .role "name" .name "port" .port "values" .values "args" $args "base" $.base "mounts" .mounts "probePath" (.probePath | default "") "readinessPath" (.readinessPath | default "")) }}
{{ end }}
{{- else if .entries }}
{{- $roles := list -}}
{{- $level := 0 -}}
{{- $mounts := list -}}
{{- $mountNames := list -}}
{{- $probe := dict -}}
{{- $ready := dict -}}
{{- range .entries }}
{{- $roles = append $roles .role -}}
{{- if gt (int .values.logLevel) $level }}{{ $level = int .values.logLevel }}{{ end -}}
{{- range .mounts }}
{{- if not (has .name $mountNames) }}{{ $mountNames = append $mountNames .name }}{{ $mounts = append $mounts . }}{{ end -}}
{{- end -}}
{{- if and .probePath (not $probe) }}{{ $probe = dict "path" .probePath "port" .port }}{{ end -}}
{{- if and .readinessPath (not $ready) }}{{ $ready = dict "path" .readinessPath "port" .port }}{{ end -}}
{{- end }}
- name: csi-sidecars
  image: {{ include "csi-sidecars.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: [csi-sidecars, run]
  args:
    - {{ printf "--roles=%s" (join "," $roles) | quote }}
    {{- range $.common }}
    - {{ . | quote }}
    {{- end }}
    - {{ printf "--v=%d" $level | quote }}
    {{- range .entries }}
    {{- $role := .role }}
    {{- range (concat .args .values.extraArgs) }}
    {{- if hasPrefix "--" . }}
    - {{ printf "--%s.%s" $role (trimPrefix "--" .) | quote }}
    {{- else if hasPrefix "-" . }}
    - {{ printf "--%s.%s" $role (trimPrefix "-" .) | quote }}
    {{- else }}
    - {{ . | quote }}
    {{- end }}
    {{- end }}
    {{- end }}
  env:
    {{- include "csi-sidecars.podEnv" $root | nindent 4 }}
    {{- range .entries }}
    {{- with .values.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- end }}
    {{- with .bundle.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- range .entries }}
    - name: {{ .port }}
      containerPort: {{ .values.httpPort }}
      protocol: TCP
    {{- end }}
  {{- with $probe }}
  livenessProbe:
    httpGet:
      path: {{ .path }}
      port: {{ .port }}
    initialDelaySeconds: 10
    timeoutSeconds: 10
    periodSeconds: 20
    failureThreshold: 3
  {{- with include "csi-sidecars.startupProbe" (list $root .path .port) }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- end }}
  {{- with $ready }}
  readinessProbe:
    httpGet:
      path: {{ .path }}
      port: {{ .port }}
    periodSeconds: 10
  {{- end }}
  {{- with .bundle.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml (mergeOverwrite (deepCopy .base) (deepCopy (.bundle.securityContext | default dict))) | nindent 4 }}
  {{- with $mounts }}
  volumeMounts:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/*
The driver's CSIDriver flags for cluster-driver-registrar, from .Values.csiDriver.
*/}}
{{- define "csi-sidecars.csiDriverArgs" -}}
{{- $c := .Values.csiDriver -}}
{{- if not (kindIs "invalid" $c.attachRequired) }}
- {{ printf "--attach-required=%t" $c.attachRequired | quote }}
{{- end }}
- {{ printf "--pod-info-mount=%t" $c.podInfoOnMount | quote }}
{{- with $c.volumeLifecycleModes }}
- {{ printf "--volume-lifecycle-modes=%s" (join "," .) | quote }}
{{- end }}
{{- with $c.fsGroupPolicy }}
- {{ printf "--fs-group-policy=%s" . | quote }}
{{- end }}
{{- range $flag, $key := dict "storage-capacity" "storageCapacity" "requires-republish" "requiresRepublish" "selinux-mount" "seLinuxMount" }}
{{- $value := index $c $key }}
{{- if not (kindIs "invalid" $value) }}
- {{ printf "--%s=%t" $flag $value | quote }}
{{- end }}
{{- end }}
{{- range $c.tokenRequests }}
- {{ printf "--token-request=%s%s" .audience (ternary (printf ",%d" (int64 (.expirationSeconds | default 0))) "" (hasKey . "expirationSeconds")) | quote }}
{{- end }}
{{- with $c.labels }}
{{- $pairs := list }}
{{- range $k, $val := . }}{{ $pairs = append $pairs (printf "%s=%s" $k $val) }}{{ end }}
- {{ printf "--labels=%s" (join "," $pairs) | quote }}
{{- end }}
{{- if $c.allowRecreate }}
- --allow-recreate
{{- end }}
{{- end -}}

{{/*
Whether a role may read Secrets: rbac.secrets, or a StorageClass parameter the role resolves.
(list $ "provisioner") -> "true" or "".
*/}}
{{- define "csi-sidecars.needsSecrets" -}}
{{- $root := index . 0 -}}
{{- $role := index . 1 -}}
{{- $keys := dict
  "provisioner" (list "csi.storage.k8s.io/provisioner-secret-name" "csiProvisionerSecretName")
  "attacher" (list "csi.storage.k8s.io/controller-publish-secret-name" "csiControllerPublishSecretName")
  "resizer" (list "csi.storage.k8s.io/controller-expand-secret-name" "csiControllerExpandSecretName")
  "snapshotter" (list)
-}}
{{- $found := $root.Values.rbac.secrets -}}
{{- range $root.Values.storageClasses -}}
{{- $params := .parameters | default dict -}}
{{- range (index $keys $role | default list) -}}
{{- if hasKey $params . }}{{ $found = true }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if $found }}true{{ end -}}
{{- end -}}

{{/*
Checks that stop the render with a clear message.
*/}}
{{- define "csi-sidecars.validate" -}}
{{- if not .Values.driver.name -}}
{{- fail "driver.name is required: the CSI driver name the driver reports in GetPluginInfo (e.g. hostpath.csi.k8s.io)" -}}
{{- end -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" .Values.driver.name) -}}
{{- fail (printf "driver.name %q must be a DNS subdomain (lower case letters, digits, '-' and '.')" .Values.driver.name) -}}
{{- end -}}
{{- if and (or (and .Values.controller.enabled .Values.controller.driver.enabled) .Values.node.enabled) (not .Values.driver.image.repository) -}}
{{- fail "driver.image.repository is required: a driver container is rendered (controller.driver.enabled or node.enabled)" -}}
{{- end -}}
{{- if and (eq .Values.csiDriver.mode "registrar") (not .Values.controller.enabled) -}}
{{- fail "csiDriver.mode=registrar runs cluster-driver-registrar in the controller pods: set controller.enabled=true, or csiDriver.mode=template or none" -}}
{{- end -}}
{{- if and .Values.controller.enabled (gt (int .Values.controller.replicas) 1) (not .Values.controller.leaderElection) -}}
{{- fail "controller.leaderElection=false with controller.replicas > 1 would run every role twice: enable leader election or use one replica" -}}
{{- end -}}
{{- $ports := dict -}}
{{- range $role := list "provisioner" "attacher" "snapshotter" "resizer" "livenessprobe" -}}
{{- $v := index $.Values.controller $role -}}
{{- if $v.enabled -}}
{{- $key := toString $v.httpPort -}}
{{- if hasKey $ports $key }}{{ fail (printf "controller.%s.httpPort %s is already used by controller.%s" $role $key (index $ports $key)) }}{{ end -}}
{{- $_ := set $ports $key $role -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.csiDriver.mode "registrar" -}}
{{- $key := toString .Values.controller.clusterDriverRegistrar.httpPort -}}
{{- if hasKey $ports $key }}{{ fail (printf "controller.clusterDriverRegistrar.httpPort %s is already used by controller.%s" $key (index $ports $key)) }}{{ end -}}
{{- end -}}
{{- if and .Values.node.nodeDriverRegistrar.enabled .Values.node.livenessprobe.enabled (eq (int .Values.node.nodeDriverRegistrar.httpPort) (int .Values.node.livenessprobe.httpPort)) -}}
{{- fail "node.nodeDriverRegistrar.httpPort and node.livenessprobe.httpPort must differ" -}}
{{- end -}}
{{- end -}}

{{/*
Whether to render the snapshot CRD (a dict from files/crds/): "install", or why not:
"other-owner" (the cluster has it and this release did not install it) or "newer" (this release
installed it and the cluster's copy is newer than the chart's). (list $ $crd)
*/}}
{{- define "csi-sidecars.crdDecision" -}}
{{- $root := index . 0 -}}
{{- $crd := index . 1 -}}
{{- $ours := index $root.Chart.Annotations "csi-sidecars.io/snapshot-crds-version" -}}
{{- $live := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" $crd.metadata.name -}}
{{- if not $live -}}
install
{{- else -}}
{{- $ann := $live.metadata.annotations | default dict -}}
{{- if not (and (eq (get $ann "meta.helm.sh/release-name") $root.Release.Name) (eq (get $ann "meta.helm.sh/release-namespace") $root.Release.Namespace)) -}}
other-owner
{{- else if and (get $ann "csi-sidecars.io/snapshot-crds-version") (semverCompare (printf "> %s" $ours) (get $ann "csi-sidecars.io/snapshot-crds-version")) -}}
newer
{{- else -}}
install
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "csi-sidecars.snapshotCRDsWanted" -}}
{{- if and .Values.snapshotCRDs.install (or .Values.snapshotController.enabled (and .Values.controller.enabled .Values.controller.snapshotter.enabled)) }}true{{ end -}}
{{- end -}}

{{/*
The startup probe of a container with a liveness probe: (list $ path port), same endpoint.
*/}}
{{- define "csi-sidecars.startupProbe" -}}
{{- $sp := (index . 0).Values.startupProbe -}}
{{- if $sp.enabled -}}
startupProbe:
  httpGet:
    path: {{ index . 1 }}
    port: {{ index . 2 }}
  periodSeconds: {{ $sp.periodSeconds }}
  failureThreshold: {{ $sp.failureThreshold }}
{{- end }}
{{- end -}}
