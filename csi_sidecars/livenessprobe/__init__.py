"""livenessprobe."""
