"""Options shared by several commands. Each command receives what the user gave as sections of a pipeline
config, so the command line and pipeline files are checked by one validation."""

from __future__ import annotations

import functools

import click

from streamstyle.core.settings import BACKENDS, BITRATE, CAMERA_FPS, PRECISIONS, SMOOTH, STRENGTH, Bounds


def runtime_options(command):
    """--device, --precision, --compile and --backend, shared by every command that runs a style network."""
    return backend_option()(device_options(command))


def backend_option(*more: str, also: str = ""):
    """--backend, with `more` choices than the engines (`also` says what they do)."""
    return click.option(
        "--backend", type=click.Choice(["auto", *more, *BACKENDS]),
        help="The engine that runs the network: auto (the default: TensorRT on CUDA when installed, else torch; "
        "on x86 CPUs OpenVINO for the styles its bf16 or int8 keeps, else torch), "
        "torch, onnxruntime, openvino (CPU; bf16 where the CPU has it, int8) or tensorrt (CUDA). Engines other than "
        f"torch run the network exported to ONNX, once, and cached.{also}",
    )  # fmt: skip


def device_options(command):
    """--device, --precision and --compile: where and how torch runs (training has only torch)."""
    command = click.option(
        "--compile", "compile_model", is_flag=True, default=None,
        help="torch.compile the model: about 30 s once per frame size (cached for later runs), then frames with "
        "the norms and activations fused into fewer passes (1.04x on a 2-core CPU, where eager already reuses its "
        "buffers; meant for GPUs).",
    )(command)  # fmt: skip
    command = click.option(
        "--precision",
        type=click.Choice(["auto", *PRECISIONS]),
        help="Compute precision: auto (the default) is fp16 on CUDA; on a CPU, with the engine auto too, OpenVINO "
        "bf16 for each style it paints within 40 dB PSNR of fp32 where the CPU computes bf16 natively (AVX512_BF16, "
        "AMX), OpenVINO int8 for each within 35 dB on other x86 CPUs, and fp32 for the rest. int8 (openvino engine; "
        "calibrated once on video frames) runs each style it paints within 35 dB PSNR of fp32, the others in fp32.",
    )(command)
    return click.option(
        "--device", help="auto (the default: CUDA when present), cpu, cuda or cuda:N."
    )(command)


def int_range(bounds: Bounds[int]) -> click.IntRange:
    """The click type of an integer setting, from the range the setting checks itself with: --help shows it, and
    a value outside it is refused naming the option."""
    return click.IntRange(bounds.low, bounds.high)


def float_range(bounds: Bounds[float]) -> click.FloatRange:
    """`int_range` for a setting that takes any number."""
    return click.FloatRange(bounds.low, bounds.high)


def options_given(**values) -> dict:
    """The options the user gave (click passes None for the others), as one section of a pipeline config."""
    return {key: value for key, value in values.items() if value is not None and value != ()}


def style_options(command):
    """--style, --model, --strength, --preserve-color, --device and --precision, shared by every command that
    stylizes. The command receives them as the `style` and `runtime` sections of a pipeline config."""

    @functools.wraps(command)
    def with_sections(*args, style, model, strength, preserve_color, device, precision, compile_model, backend,
                      **kwargs):  # fmt: skip
        style_section = options_given(style=style, model=model, strength=strength,
                                      preserve_color=preserve_color or None)  # fmt: skip
        runtime = options_given(device=device, precision=precision, compile=compile_model or None, backend=backend)
        return command(*args, style=style_section, runtime=runtime, **kwargs)

    options = [
        click.option(
            "--style",
            "-s",
            help="Built-in style index (7, the default), a blend (3:0.5,12:0.5), a painting file, "
            "or a blend of paintings (a.jpg:0.7,b.jpg:0.3).",
        ),
        click.option(
            "--model",
            default=None,
            help="Style network: magenta or dumoulin26 (default: dumoulin26 for built-in indices, magenta for "
            "painting files), or a model file trained by `streamstyle train` (.pt; its style is built in).",
        ),
        click.option(
            "--strength",
            type=float_range(STRENGTH),
            help="How much style: 0 keeps the input, 1 (the default) is full style.",
        ),
        click.option(
            "--preserve-color", is_flag=True, help="Keep the input's colours; transfer only luminance (texture)."
        ),
    ]
    with_sections = runtime_options(with_sections)
    for option in reversed(options):
        with_sections = option(with_sections)
    return with_sections


audio_option = click.option(
    "--audio/--no-audio", default=None,
    help="Keep the source's audio (default: on). Files keep every audio stream as it is; live outputs and window "
         "recordings carry the first, as AAC in step with the pictures.")  # fmt: skip


def parse_bitrate(_context: click.Context, _option: click.Parameter, value: str | None) -> int | None:
    """--bitrate in bits per second, from 2M or 800k."""
    if value is None:
        return None
    number, multiplier = value.strip().lower(), 1
    if number[-1:] in ("k", "m"):
        number, multiplier = number[:-1], 1000 if number[-1] == "k" else 1_000_000
    try:
        bits = round(float(number) * multiplier)
    except (ValueError, OverflowError):  # not a number, NaN, infinite
        raise click.BadParameter(f"{value!r} is not a bitrate like 2M or 800k") from None
    if not BITRATE.holds(bits):
        raise click.BadParameter(f"{value!r} is {bits} bits per second; video needs {BITRATE} (try 2M)")
    return bits


def temporal_options(default_mode: str, default_smooth: float):
    """--temporal and --smooth; the defaults (shown in --help) are the config's for the kind of job."""

    def decorate(command):
        command = click.option("--smooth", type=float_range(SMOOTH),
                               help=f"Weight of the previous output in the blend (default {default_smooth}).",
                               )(command)  # fmt: skip
        return click.option(
            "--temporal", type=click.Choice(["flow", "ema", "off"]),
            help=f"Flicker reduction (default {default_mode}): flow-guided blending with the previous output, a "
            "plain running average (cheap), or none.",
        )(command)  # fmt: skip

    return decorate


def encoder_options(command):
    options = [
        click.option("--codec", help="Video codec: libx264 (the default), libx265, libvpx-vp9, h264_nvenc..."),
        click.option("--preset", help="Encoder speed/size trade-off (x264, x265: default veryfast; NVENC: p1-p7, "
                                      "default p4)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def live_source_options(command):
    """--camera, --source, --source-format, --size and --fps: where live frames come from."""
    options = [
        click.option("--camera", default="0", show_default=True,
                     help="Camera index (0 is /dev/video0), a /dev/videoN path, or a stream URL (rtsp://...)."),
        click.option("--source", help="Any FFmpeg input instead of the camera: a file (played in real time), a URL, "
                     "or with --source-format lavfi a test pattern such as 'testsrc2=size=640x480:rate=30'."),
        click.option("--source-format", help="FFmpeg demuxer for --source: lavfi, x11grab, v4l2..."),
        click.option("--size", "camera_size", help="Resolution WIDTHxHEIGHT to ask the camera for."),
        click.option("--fps", "camera_fps", type=float_range(CAMERA_FPS), help="Frame rate to ask the camera for."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


LIVE_MAX_SIZE_HELP = "Run the model with the longer side at most this (default: 256 on CPU, 720 on CUDA)."


def overwrite_option(command):
    """--overwrite: replace an existing output that is not of the kind the command writes (inputs never)."""
    return click.option("--overwrite", is_flag=True, default=None,
                        help="Replace existing outputs even if they are not of the kind written (never an input).",
                        )(command)  # fmt: skip
