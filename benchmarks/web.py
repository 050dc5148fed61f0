"""Milliseconds per picture of each style network in the web page (headless Chromium from Debian, onnxruntime-web's
WASM engine), beside the Python package's engines on the same machine and pictures: medians of interleaved rounds,
so that a busy machine slows every engine alike; and what a visitor downloads.

    python -m benchmarks.web [--sizes 256,384,640] [--rounds 5]

Needs `make web` and Debian's chromium and chromium-driver (`make system-deps`). Each figure is a whole `stylize`
call on a 16:9 picture whose longer side is the size: the page's own conversions included, as a user gets it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from streamstyle.apps.web.site import VENDOR, prepare_site
from streamstyle.processing.runtime import engines_here
from streamstyle.processing.stylizer import Stylizer
from tests.web.browser import PageServer, chromium, open_page

PAINTING = "samples/paintings/hokusai_great_wave.png"
NETWORKS = {"dumoulin26": 7, "magenta": PAINTING}

# One round in the page: each network once at each size, on noise pictures made there; the painting's vector is
# computed once before, as the page does. Gives back {network: {size: ms}} and the predictor's ms.
PAGE_ROUND = """
const [sizes, done] = arguments;
(async () => {
  const { stylize, styleVectorOf } = await import('/streamstyle.js');
  const noise = (width, height) => {
    const data = new Uint8ClampedArray(4 * width * height);
    for (let i = 0; i < data.length; i++) data[i] = i % 4 === 3 ? 255 : Math.random() * 255;
    return new ImageData(data, width, height);
  };
  const painting = noise(512, 512);
  let started = performance.now();
  const vector = await styleVectorOf(painting);
  const times = { predictor: performance.now() - started, dumoulin26: {}, magenta: {} };
  for (const size of sizes) {
    const picture = noise(size, Math.round((size * 9) / 16 / 4) * 4);
    for (const [network, style] of [['dumoulin26', 7], ['magenta', vector]]) {
      started = performance.now();
      await stylize(picture, { style });
      times[network][size] = performance.now() - started;
    }
  }
  return times;
})().then(done, (error) => done({ error: String(error) }));
"""


def python_round(stylizers: dict[str, Stylizer], pictures: dict[int, np.ndarray]) -> dict[str, dict[int, float]]:
    times: dict[str, dict[int, float]] = {name: {} for name in stylizers}
    for name, stylizer in stylizers.items():
        for size, picture in pictures.items():
            started = time.perf_counter()
            stylizer(picture)
            times[name][size] = (time.perf_counter() - started) * 1000
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,384,640")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    pictures = {size: rng.integers(0, 256, (round(size * 9 / 16 / 4) * 4, size, 3), np.uint8) for size in sizes}
    backends = sorted({backend for backend, precision in engines_here("cpu") if precision == "fp32"})
    stylizers = {f"{network} {backend}": Stylizer(style, device="cpu", precision="fp32", backend=backend)
                 for network, style in NETWORKS.items() for backend in backends}  # fmt: skip
    page_rounds, python_rounds = [], []
    with PageServer() as server, chromium() as driver:
        open_page(driver, server.url)
        engine = driver.find_element("id", "engine").text
        driver.execute_async_script(PAGE_ROUND, sizes[:1])  # warm-up: the networks load, the engine compiles
        python_round(stylizers, {sizes[0]: pictures[sizes[0]]})
        for _ in range(args.rounds):
            result = driver.execute_async_script(PAGE_ROUND, sizes)
            if "error" in result:
                raise SystemExit(f"the page failed: {result['error']}")
            page_rounds.append(result)
            python_rounds.append(python_round(stylizers, pictures))

    print(f"headless Chromium, onnxruntime-web {engine}; medians of {args.rounds} interleaved rounds, ms per picture")
    print(f"(a whole stylize call, 16:9 noise pictures; the page's predictor: "
          f"{statistics.median(r['predictor'] for r in page_rounds):.0f} ms per painting)\n")  # fmt: skip
    engines = ["page wasm", *backends]
    print(f"{'network':<11} {'size':>5} " + " ".join(f"{name:>12}" for name in engines) + f" {'page/torch':>11}")
    for network in NETWORKS:
        for size in sizes:
            page = statistics.median(r[network][str(size)] for r in page_rounds)
            python = {b: statistics.median(r[f"{network} {b}"][size] for r in python_rounds) for b in backends}
            cells = [page, *python.values()]
            print(f"{network:<11} {size:>5} " + " ".join(f"{ms:>12.0f}" for ms in cells)
                  + f" {page / python['torch']:>10.2f}x")  # fmt: skip

    site = prepare_site().files()
    models = sum(path.stat().st_size for name, path in site.items() if name.startswith("models/"))
    wasm = (VENDOR / "ort-wasm-simd-threaded.wasm").stat().st_size + (VENDOR / "ort.wasm.min.mjs").stat().st_size
    print(
        f"\ndownload: networks {models / 1e6:.1f} MB (dumoulin26 alone "
        f"{site['models/dumoulin26.onnx'].stat().st_size / 1e6:.1f} MB), onnxruntime-web WASM {wasm / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
