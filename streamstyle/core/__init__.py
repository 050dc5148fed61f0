"""The bottom layer: user-facing errors, the frame and settings types every layer passes around, atomic file
writing and small statistics. Imports nothing heavier than the standard library and numpy."""
