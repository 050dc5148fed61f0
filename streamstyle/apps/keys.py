"""The window's keys, in one table for the window, its help text and `streamstyle webcam --help`."""

from __future__ import annotations

KEY_MAP = (
    ("n / p", "next / previous built-in style"),
    ("] / [", "next / previous painting from --style-dir"),
    ("+ / -", "more / less style (strength, steps of 0.1)"),
    ("t", "temporal smoothing on / off"),
    ("v", "split view: original | stylized"),
    ("o", "overlay (fps, latency, style) on / off"),
    ("c", "save a snapshot PNG of the stylized frame"),
    ("r", "start / stop recording (same encoder as `streamstyle file`)"),
    ("q / Esc", "quit; closing the window quits too"),
)


def key_help() -> str:
    return "\n".join(f"  {keys:<8} {action}" for keys, action in KEY_MAP)
