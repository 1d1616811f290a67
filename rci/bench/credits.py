"""CREDITS.md for a build: each Debian package whose media it uses, with its copyright file."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path


def package_version(package: str) -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


def used_media(manifest: dict) -> dict[str, set[str]]:
    """package -> the files (and .rcc members) of it that the build's sources use."""
    used: dict[str, set[str]] = defaultdict(set)
    for source in manifest["sources"]:
        provenance = source["provenance"]
        for shot in provenance["shots"]:
            used[shot["package"]].add(f"{shot['file']}:{shot['member']}".rstrip(":"))
        audio = provenance["audio"]
        for file in audio.get("files", []) + ([audio["file"]] if "file" in audio else []):
            used[audio["package"]].add(file)
    return used


def write_credits(out: Path, manifest: dict) -> Path:
    """Write out/CREDITS.md: per package its version, the media used and its copyright file
    verbatim (the attribution CC BY-SA and similar licences ask for)."""
    lines = ["# Credits", "", "The benchmark's sources are made from these Debian packages.", ""]
    for package, files in sorted(used_media(manifest).items()):
        copyright_file = Path("/usr/share/doc") / package / "copyright"
        lines += [f"## {package} {package_version(package)}", "", "Used:", ""]
        lines += [f"- `{f}`" for f in sorted(files)]
        lines += ["", "Copyright file:", "", "```", copyright_file.read_text().rstrip(), "```", ""]
    path = out / "CREDITS.md"
    path.write_text("\n".join(lines))
    return path
