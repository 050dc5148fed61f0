"""The networks, one nn.Module per paper, with their weight conversion, training checkpoints and the registry of
what ships."""
