"""The web page's server and a headless browser, for tests and benchmarks."""
