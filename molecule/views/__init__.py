"""The workspace API's views, /metrics, the proxy's token check and the JSON error pages."""
