"""Reports: read the store, never train; write PNG figures and an HTML page."""
