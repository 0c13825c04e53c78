"""Training and inference throughput of the segmentation models (issue 6).

    python benchmarks/bench_segmentation_throughput.py [--archs ...] [--sizes 128 256]
        [--modes fp32 bf16 xla] [--steps 5] [--warmup 2] [--batch 8] [--out PATH]

For each model config x image size x precision mode, on this machine's CPU:

* builds the model with ``gliomics.models.build_from_config`` (random
  initialisation, 3 input channels, one sigmoid output channel);
* compiles it with Adam and ``get_loss("bce_dice")``;
* runs ``--warmup`` untimed ``train_on_batch`` steps (graph tracing, XLA
  compilation), then times ``--steps`` ``train_on_batch`` calls on random
  float32 batches of ``--batch`` images -> **training seconds per image**
  (median step time / batch size);
* likewise one warm-up and ``--steps`` timed ``predict_on_batch`` calls ->
  **inference seconds per image**.

Modes: ``fp32`` (float32 policy), ``bf16`` (``mixed_bfloat16`` global policy
set before building; the output sigmoid stays float32), ``xla`` (float32,
``jit_compile=True``). Build, training and inference are attempted
separately: a phase that fails (an op without a bf16 or XLA kernel, say) is
recorded as ``{build,train,infer}_error`` and the row's ``status`` is ``ok``,
``partial`` or ``failed``; the run goes on. The Keras session
is cleared between configs.

Per row the JSON also keeps the mean, min and max step times, the CPU time of
this process per image (a steadier guide than wall time when other jobs share
the cores), the warm-up seconds (mostly tracing/compilation) and the load
average before the row. The header records the date, TensorFlow version,
``os.cpu_count()``, whether /proc/cpuinfo lists ``avx512_bf16`` / ``amx_bf16``
and the load average.

Prints a table as it goes and writes benchmarks/results/segmentation_throughput.json
atomically after every config, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import gliomics  # noqa: F401  (before TensorFlow)
from gliomics.io import write_json

DEFAULT_ARCHS = [
    "plain_unet",
    "Unet-resnet18",
    "Unet-resnet34",
    "FPN-resnet34",
    "Unet-resnext50",
    "Unet-mobilenetv2",
    "Unet-efficientnetb0",
]
MODES = ("fp32", "bf16", "xla")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "segmentation_throughput.json"
CPU_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx2")

ROW_FORMAT = "{:<22} {:>5} {:<5} {:>12} {:>12} {:>10} {:>8}  {}"


def model_config(name: str, size: int) -> dict:
    """``plain_unet`` (32 base filters), ``plain_unetN`` (N base filters) or ``ARCH-BACKBONE`` -> a
    ``build_from_config`` dict."""
    shape = (size, size, 3)
    if name.startswith("plain_unet"):
        filters = int(name.removeprefix("plain_unet") or 32)
        return {"arch": "plain_unet", "base_filters": filters, "depth": 4, "bn_momentum": 0.9, "input_shape": shape}
    arch, _, backbone = name.partition("-")
    if not backbone:
        raise SystemExit(f"config {name!r}: expected plain_unet or ARCH-BACKBONE, e.g. Unet-resnet18")
    return {"arch": arch, "backbone": backbone, "input_shape": shape}


def cpu_flags() -> dict:
    """Which of CPU_FLAGS the first processor in /proc/cpuinfo lists."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {flag: None for flag in CPU_FLAGS}
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    return {"model_name": model, **{flag: flag in flags for flag in CPU_FLAGS}}


def machine_info(tf, args) -> dict:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_flags(),
        "loadavg_start": list(os.getloadavg()),
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def random_batch(np, batch: int, size: int, seed: int = 0):
    """Random float32 images in [0, 1) and binary float32 masks."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch, size, size, 3), dtype=np.float32)
    y = (rng.random((batch, size, size, 1)) < 0.1).astype(np.float32)
    return x, y


def time_calls(fn, steps: int) -> tuple[list[float], float]:
    """Wall seconds of each of ``steps`` calls, and the total process CPU seconds."""
    times = []
    cpu0 = time.process_time()
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times, time.process_time() - cpu0


def step_stats(prefix: str, times: list[float], cpu_s: float, batch: int) -> dict:
    n_images = batch * len(times)
    return {
        f"{prefix}_s_per_img": statistics.median(times) / batch,
        f"{prefix}_mean_s_per_img": statistics.fmean(times) / batch,
        f"{prefix}_min_step_s": min(times),
        f"{prefix}_max_step_s": max(times),
        f"{prefix}_cpu_s_per_img": cpu_s / n_images,
    }


def build_compiled(tf, config: dict, mode: str):
    from gliomics.models import build_from_config
    from gliomics.training.losses import get_loss

    model = build_from_config(config)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss=get_loss("bce_dice"),
        jit_compile=(mode == "xla"),
    )
    return model


def build_into(built: dict, tf, config: dict, mode: str) -> dict:
    """Build and compile into ``built["model"]``; return the row fields."""
    built["model"] = build_compiled(tf, config, mode)
    return {"params": int(built["model"].count_params())}


def attempt(row: dict, phase: str, fn) -> None:
    """Run ``fn`` and merge its dict into ``row``; on failure record ``{phase}_error``."""
    try:
        row.update(fn())
    except Exception as exc:  # noqa: BLE001 -- record and go on
        row[f"{phase}_error"] = f"{type(exc).__name__}: {str(exc).strip()[:2000]}"
        row[f"{phase}_traceback_tail"] = traceback.format_exc()[-3000:]


def measure_train(model, x, y, args) -> dict:
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    warmup = time.perf_counter() - t0
    return {"train_warmup_s": warmup,
            **step_stats("train", *time_calls(lambda: model.train_on_batch(x, y), args.steps), args.batch)}


def measure_infer(model, x, args) -> dict:
    t0 = time.perf_counter()
    model.predict_on_batch(x)
    warmup = time.perf_counter() - t0
    return {"infer_warmup_s": warmup,
            **step_stats("infer", *time_calls(lambda: model.predict_on_batch(x), args.steps), args.batch)}


def run_one(tf, np, name: str, size: int, mode: str, args) -> dict:
    """Build, warm up and time one config; training and inference may fail separately.

    ``status``: ok (both measured), partial (one failed), failed (neither, or
    the build failed). The float32 policy is restored afterwards.
    """
    row = {"config": name, "size": size, "mode": mode, "batch": args.batch,
           "steps": args.steps, "warmup": args.warmup, "loadavg_before": list(os.getloadavg())}
    t0 = time.perf_counter()
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    if mode == "bf16":
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    built, model = {}, None
    try:
        attempt(row, "build", lambda: build_into(built, tf, model_config(name, size), mode))
        model = built.get("model")
        if model is not None:
            x, y = random_batch(np, args.batch, size)
            attempt(row, "train", lambda: measure_train(model, x, y, args))
            attempt(row, "infer", lambda: measure_infer(model, x, args))
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
        built.clear()
        model = None  # noqa: F841 -- drop the last reference before clearing
        tf.keras.backend.clear_session()
    measured = ["train_s_per_img" in row, "infer_s_per_img" in row]
    row["status"] = "ok" if all(measured) else "partial" if any(measured) else "failed"
    row["total_s"] = time.perf_counter() - t0
    return row


def short_error(row: dict) -> str:
    """A one-line reason for the table: the phase and the most telling line."""
    for phase in ("build", "train", "infer"):
        error = row.get(f"{phase}_error")
        if error:
            lines = error.splitlines()
            telling = next((line for line in lines if "unsupported" in line.lower()
                            or "No registered" in line), lines[0])
            return f"{phase}: {telling.strip()[:100]}"
    return ""


def print_row(row: dict) -> None:
    def fmt(key, spec=".4f"):
        return format(row[key], spec) if key in row else "-"

    note = short_error(row)
    print(ROW_FORMAT.format(row["config"], row["size"], row["mode"], fmt("train_s_per_img"),
                            fmt("infer_s_per_img"), fmt("train_warmup_s", ".1f"),
                            row["status"], note), flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=DEFAULT_ARCHS,
                   help="plain_unet or ARCH-BACKBONE (e.g. Unet-resnet18, FPN-resnet34)")
    p.add_argument("--sizes", nargs="+", type=int, default=[128, 256])
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        p.error("--steps and --batch must be >= 1, --warmup >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    import tensorflow as tf

    report = {"machine": machine_info(tf, args), "results": []}
    m = report["machine"]
    print(f"{m['date']}  TF {m['tensorflow']}  cpu_count {m['cpu_count']}  "
          f"avx512_bf16={m['cpu']['avx512_bf16']} amx_bf16={m['cpu']['amx_bf16']}  "
          f"load {m['loadavg_start']}", flush=True)
    print(ROW_FORMAT.format("config", "size", "mode", "train s/img", "infer s/img",
                            "warmup s", "status", ""), flush=True)
    for name in args.archs:
        for size in args.sizes:
            for mode in args.modes:
                row = run_one(tf, np, name, size, mode, args)
                report["results"].append(row)
                print_row(row)
                report["machine"]["loadavg_end"] = list(os.getloadavg())
                write_json(args.out, report)
    counts = {s: sum(r["status"] == s for r in report["results"]) for s in ("ok", "partial", "failed")}
    print(f"wrote {args.out} ({len(report['results'])} rows: "
          + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
