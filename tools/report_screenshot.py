"""Make the README's screenshot of `vmae report` (docs/report.png) from generated videos.

It builds the tests' tiny model and generated clips (plus two broken files), runs
``vmae classify --segments`` and ``vmae report`` on them, opens the page in headless
Chromium and saves the top of it as a small palette PNG.

    python tools/report_screenshot.py [OUT.png]     # needs chromium on PATH
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools` and the tests' helpers importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

#: The screenshot's size (pixels) and colours (a palette keeps the PNG small).
WIDTH_PX, HEIGHT_PX, COLOURS = 1100, 1500, 128


def main(argv: list[str] | None = None) -> int:
    from PIL import Image
    from tiny_model import make_tiny_model

    from tools.videogen import make_bad_files, make_test_videos

    args = argv if argv is not None else sys.argv[1:]
    out = Path(args[0] if args else "docs/report.png")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("needs chromium on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_tiny_model(root / "model")
        videos = root / "videos"
        made = make_test_videos(root / "all")
        for folder, names in {
            "garden": ("h264", "vp9", "hevc"),
            "street": ("mjpeg", "portrait"),
        }.items():
            (videos / folder).mkdir(parents=True)
            for name in names:
                shutil.copy(made[name], videos / folder / made[name].name)
        bad = make_bad_files(root / "bad")
        for name in ("random_bytes", "text"):
            shutil.copy(bad[name], videos / "street" / f"{name}.mp4")
        vmae = [sys.executable, "-m", "vmae_cli.cli"]
        # Relative paths, run from the temporary folder: the picture shows no machine's paths.
        classify = [*vmae, "classify", "videos", "-m", "model", "-q", "-k", "3", "-o", "rows.csv"]
        classify += ["--window", "8f", "--segments-out", "windows.csv", "--summary", "run.json"]
        subprocess.run(classify, cwd=root, check=False)
        report = [*vmae, "report", "rows.csv", "--segments", "windows.csv", "-o", "report.html"]
        report += ["-q", "--summary", "run.json", "--per-label", "4"]
        subprocess.run(report, cwd=root, check=True)
        page = root / "report.html"
        shot = root / "shot.png"
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
            + [f"--user-data-dir={root / 'profile'}", f"--window-size={WIDTH_PX},{HEIGHT_PX}"]
            + [f"--screenshot={shot}", page.as_uri()],
            check=True,
            capture_output=True,
        )
        image = Image.open(shot).convert("RGB").quantize(COLOURS)
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out, optimize=True)
    print(f"{out}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
