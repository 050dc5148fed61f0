"""Inference engines: the style networks exported once to ONNX and run by ONNX Runtime, OpenVINO or TensorRT."""
