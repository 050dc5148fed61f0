"""Work that is not real time: stylizing by optimisation, training, temporal metrics and the benchmark."""
