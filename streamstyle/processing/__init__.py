"""The runtime (device, precision), styles, the stylizer over the networks, the tensor and temporal maths, and
the stages a chain runs between a source and a sink."""
