"""The jobs users run: a video file, the live window, restreaming, stills, and the pipeline configuration that
describes each of them."""
