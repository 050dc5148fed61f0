"""Media in and out: image files, PyAV helpers, the file source and sink, and the live source and writer."""
