"""What a job will write, claimed before anything heavy loads (file jobs, restreams, stills): a path that cannot work
is refused in a fraction of a second, not after the seconds it takes to import the networks."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from streamstyle.apps.config import PipelineConfig
from streamstyle.core.errors import InputError, OutputError
from streamstyle.core.files import JSON_FILE, FileKind, claim_output, files_in
from streamstyle.io.images import IMAGE_FILE, IMAGE_SUFFIXES
from streamstyle.io.live_writer import PLAYLIST_FILE
from streamstyle.io.media import VIDEO_FILE
from streamstyle.io.urls import is_file_target, target_format
from streamstyle.io.video_file import check_paths


def claim_job_outputs(config: PipelineConfig) -> None:
    """The checks of `check_paths` for a file job, of `claim_stream_outputs` for a restream."""
    if config.kind == "file":
        check_paths(config.source.input, config.output.targets[0], config.output.overwrite)
    elif config.kind == "stream":
        claim_stream_outputs(config)


def claim_stream_outputs(config: PipelineConfig) -> None:
    """Before anything starts: the recordings, playlists and stats file of a restream are distinct files that can
    be written there, none of them the input, none replacing a file of another kind unless asked."""
    written: list[tuple[str, FileKind]] = [(target, VIDEO_FILE) for target in config.output.targets
                                           if is_file_target(target)]  # fmt: skip
    written += [(target, PLAYLIST_FILE) for target in config.output.targets if target_format(target) == "hls"]
    if config.output.stats_json:
        written.append((config.output.stats_json, JSON_FILE))
    claimed: dict[Path, str] = {}
    for target, kind in written:
        real = claim_output(target, [config.source.input], kind, config.output.overwrite)
        if real in claimed:
            raise OutputError(f"{claimed[real]} and {target} are the same file: give each output its own")
        claimed[real] = target


@dataclass(frozen=True)
class StillsPlan:
    """What a run writes: an output per input, and the folders it makes for them first."""

    pairs: list[tuple[Path, Path]]  # input, output
    new_folders: list[Path]  # outermost first; removed again by a run that writes nothing into them


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, outermost first."""
    return list(reversed(list(itertools.takewhile(lambda path: not path.exists(), [folder, *folder.parents]))))


def plan_outputs(source: Path, output: Path, suffix: str = ".png", overwrite: bool = False) -> StillsPlan:
    """The outputs for an image file or a folder of them, checked before any work is done (`claim_output`);
    where OUTPUT is a folder still to be made, that it can be."""
    if not source.exists():
        raise InputError(f"input not found: {source}")
    if source.is_dir():
        inputs = files_in(source, IMAGE_SUFFIXES, "images")
        # A name with an image suffix that does not exist yet is meant as a file, not as a folder to make.
        if not output.is_dir() and (output.exists() or output.suffix.lower() in IMAGE_SUFFIXES):
            raise OutputError(f"input {source} is a folder, so the output must be a folder too, not {output}")
        pairs = [(p, output / (p.stem + suffix)) for p in inputs]
    elif output.is_dir() or (output.suffix == "" and not output.exists()):
        pairs = [(source, output / (source.stem + suffix))]
    else:
        pairs = [(source, output)]
    new_folders = _missing_folders(output) if pairs[0][1].parent == output else []
    if new_folders:
        claim_output(new_folders[0])  # made inside a folder that exists and is writable
    inputs = [input_path for input_path, _ in pairs]
    written: dict[Path, Path] = {}
    for input_path, output_path in pairs:
        if output_path in written:
            raise OutputError(f"{written[output_path].name} and {input_path.name} would both be written to "
                              f"{output_path}; rename one")  # fmt: skip
        written[output_path] = input_path
        if not new_folders:  # nothing is in a new folder yet, to be written over
            claim_output(output_path, inputs, IMAGE_FILE, overwrite)  # in place, a.jpg must not become a.png
        if output_path.suffix.lower() not in IMAGE_SUFFIXES:
            raise OutputError(f"unsupported output image type {output_path.suffix!r} for {output_path}")
    return StillsPlan(pairs, new_folders)
