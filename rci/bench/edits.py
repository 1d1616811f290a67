"""Evasive edits as ffmpeg filters, each with the ground truth it implies.

Why ffmpeg filters (Debian's ffmpeg) rather than AugLy: AugLy imports torch, which would put
gigabytes of CUDA wheels on every machine that runs the tests; ffmpeg's filters are C, fast
on 2 cores, and cover every edit here. Every edit maps a SIZE frame to a SIZE frame, so
edits chain freely; each knows where the copied picture lands (its content box, fractions
of the frame) and how it changes time (speed).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rci.bench.samples import SIZE

W, H = SIZE
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the frame


@dataclass(frozen=True)
class Edit:
    """One edit: a video filter chain from [{in}] to [{out}], extra inputs, ground truth.

    `video` is a format string with {in}, {out} and {extra0}... labels. `place` maps the
    previous content box to the new one.
    """

    name: str
    params: dict
    video: str
    # ("rect", x, y, w, h) | ("crop", x, y, w, h) | ("flip",) | ("homography", 9 numbers) | ()
    place: tuple = ()
    speed: float = 1.0
    extra_inputs: tuple[str, ...] = ()  # image or video files the filter reads

    def box(self, before: Box) -> Box:
        """Where content that was at `before` is after this edit."""
        if not self.place:
            return before
        if self.place[0] == "flip":
            return (1 - before[2], before[1], 1 - before[0], before[3])
        if self.place[0] == "homography":  # the box's corners mapped; their bounding box
            corners = [(before[i], before[j]) for i in (0, 2) for j in (1, 3)]
            h = np.reshape(self.place[1:], (3, 3))
            xs, ys = zip(*(_apply(h, p) for p in corners), strict=True)
            return (max(0.0, min(xs)), max(0.0, min(ys)), min(1.0, max(xs)), min(1.0, max(ys)))
        kind, x, y, w, h = self.place
        if kind == "rect":  # the whole previous frame shrunk into (x, y, w, h)
            return (x + before[0] * w, y + before[1] * h, x + before[2] * w, y + before[3] * h)
        # crop: the region (x, y, w, h) of the previous frame fills the new one
        x0, y0 = (max(before[0], x) - x) / w, (max(before[1], y) - y) / h
        x1, y1 = (min(before[2], x + w) - x) / w, (min(before[3], y + h) - y) / h
        return (max(0.0, x0), max(0.0, y0), min(1.0, x1), min(1.0, y1))


def _even(v: float) -> int:
    """A size in pixels: even (yuv420p), at least 2."""
    return max(2, int(round(v / 2)) * 2)


def _pos(v: float) -> int:
    """A position in pixels: even, may be 0."""
    return max(0, int(round(v / 2)) * 2)


def _fit(rect_w: float, rect_h: float, x: float, y: float) -> tuple[int, int, int, int]:
    """Pixel (x, y, w, h) of a rectangle given as fractions, on even pixels."""
    return _pos(x * W), _pos(y * H), _even(rect_w * W), _even(rect_h * H)


def _inset(px: int, py: int, pw: int, ph: int, background: str = "") -> str:
    """Filter placing the input, scaled to pw x ph, at (px, py) over extra input 0."""
    return (
        f"[{{in}}]scale={pw}:{ph}[fg{{n}}];[{{extra0}}]scale={W}:{H}{background}[bg{{n}}];"
        f"[bg{{n}}][fg{{n}}]overlay={px}:{py}:shortest=1[{{out}}]"
    )


def _rect(px: int, py: int, pw: int, ph: int) -> tuple:
    return ("rect", px / W, py / H, pw / W, ph / H)


def bars(rng: np.random.Generator, color: str) -> Edit:
    scale = float(rng.uniform(0.6, 0.85))
    if rng.random() < 0.7:  # letterbox
        pw, ph = W, _even(H * scale)
    else:  # pillarbox
        pw, ph = _even(W * scale), H
    px, py = _pos((W - pw) / 2), _pos((H - ph) / 2)
    video = f"[{{in}}]scale={pw}:{ph},pad={W}:{H}:{px}:{py}:{color}[{{out}}]"
    return Edit(f"{color}_bars", {"scale": scale}, video, _rect(px, py, pw, ph))


def blur_pad(rng: np.random.Generator) -> Edit:
    scale = float(rng.uniform(0.55, 0.8))
    pw, ph = _even(W * scale), _even(H * scale)
    px, py = _pos((W - pw) / 2), _pos((H - ph) / 2)
    video = (
        f"[{{in}}]split[bgsrc{{n}}][fgsrc{{n}}];"
        f"[bgsrc{{n}}]scale={W}:{H},boxblur=20:2[bg{{n}}];[fgsrc{{n}}]scale={pw}:{ph}[fg{{n}}];"
        f"[bg{{n}}][fg{{n}}]overlay={px}:{py}[{{out}}]"
    )
    return Edit("blur_pad", {"scale": scale}, video, _rect(px, py, pw, ph))


def crop(rng: np.random.Generator) -> Edit:
    keep = float(rng.uniform(0.7, 0.9))
    cw, ch = _even(W * keep), _even(H * keep)
    cx, cy = _pos(rng.uniform(0, W - cw)), _pos(rng.uniform(0, H - ch))
    video = f"[{{in}}]crop={cw}:{ch}:{cx}:{cy},scale={W}:{H}[{{out}}]"
    return Edit("crop", {"keep": keep}, video, ("crop", cx / W, cy / H, cw / W, ch / H))


def aspect(rng: np.random.Generator) -> Edit:
    squeeze = float(rng.uniform(0.7, 0.85))  # width squeezed, pillarboxed
    pw = _even(W * squeeze)
    px = _pos((W - pw) / 2)
    video = f"[{{in}}]scale={pw}:{H},pad={W}:{H}:{px}:0:black[{{out}}]"
    return Edit("aspect", {"squeeze": squeeze}, video, _rect(px, 0, pw, H))


def _write_png(folder: Path, name: str, image: Image.Image) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        image.save(path)
    return str(path)


def template(rng: np.random.Generator, assets: Path) -> Edit:
    """The video inside a decorative template: gradient, border, caption bars."""
    top, left = float(rng.uniform(0.12, 0.22)), float(rng.uniform(0.05, 0.15))
    px, py, pw, ph = _fit(1 - 2 * left, 1 - top - 0.2, left, top)
    hue = rng.integers(0, 255, 3)
    canvas = Image.new("RGB", SIZE, tuple(int(c) for c in hue))
    draw = ImageDraw.Draw(canvas)
    for i in range(0, H, 6):
        draw.line([(0, i), (W, i)], fill=tuple(int((c + i) % 255) for c in hue))
    draw.rectangle([px - 6, py - 6, px + pw + 5, py + ph + 5], outline=(255, 215, 0), width=6)
    draw.rectangle([0, H - 50, W, H], fill=(20, 20, 20))
    draw.text((20, 15), "MUST WATCH!!! full video below", fill=(255, 255, 255))
    draw.text((20, H - 35), "follow for part 2  #viral #fyp", fill=(255, 255, 0))
    png = _write_png(assets, f"template-{px}-{py}-{pw}-{ph}-{hue[0]}.png", canvas)
    video = _inset(px, py, pw, ph)
    return Edit(
        "template", {"top": top, "left": left}, video, _rect(px, py, pw, ph), extra_inputs=(png,)
    )


def screen_recording(rng: np.random.Generator, assets: Path) -> Edit:
    """A screen capture of a video player: window chrome, progress bar, comment panel."""
    side = float(rng.uniform(0.22, 0.32))
    px, py, pw, ph = _fit(1 - side - 0.04, 0.62, 0.02, 0.12)
    canvas = Image.new("RGB", SIZE, (245, 245, 245))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([0, 0, W, 30], fill=(40, 40, 48))
    for i, c in enumerate([(255, 95, 86), (255, 189, 46), (39, 201, 63)]):
        draw.ellipse([10 + 18 * i, 9, 22 + 18 * i, 21], fill=c)
    draw.text((90, 9), "www.video-site.example/watch?v=abc123", fill=(220, 220, 220))
    draw.rectangle([px, py + ph, px + pw, py + ph + 26], fill=(15, 15, 15))
    draw.rectangle([px + 8, py + ph + 11, px + int(pw * 0.45), py + ph + 15], fill=(230, 30, 30))
    draw.text((px + 4, py + ph + 32), "Amazing clip you have to see", fill=(10, 10, 10))
    cx = px + pw + 12
    for i in range(9):
        draw.text((cx, 45 + 30 * i), f"user{i}: lol {'!' * (i % 4)}", fill=(60, 60, 60))
    png = _write_png(assets, f"screen-{px}-{py}-{pw}-{ph}.png", canvas)
    video = _inset(px, py, pw, ph)
    return Edit(
        "screen_recording", {"side": side}, video, _rect(px, py, pw, ph), extra_inputs=(png,)
    )


def picture_in_picture(rng: np.random.Generator, host: str) -> Edit:
    """The copy shrunk into a corner over another (unrelated) video."""
    scale = float(rng.uniform(0.35, 0.55))
    pw, ph = _even(W * scale), _even(H * scale)
    corner = rng.integers(0, 4)
    px = 16 if corner % 2 == 0 else W - pw - 16
    py = 16 if corner < 2 else H - ph - 16
    video = _inset(px, py, pw, ph, background=",setpts=PTS-STARTPTS")
    return Edit(
        "picture_in_picture", {"scale": scale}, video, _rect(px, py, pw, ph), extra_inputs=(host,)
    )


def watermark(rng: np.random.Generator, assets: Path) -> Edit:
    logo = Image.new("RGBA", (150, 50), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.rounded_rectangle([0, 0, 149, 49], radius=10, fill=(255, 255, 255, 110))
    draw.text((14, 18), "@reuploader_tv", fill=(255, 40, 40, 230))
    png = _write_png(assets, "watermark.png", logo)
    x, y = int(rng.integers(8, W - 160)), int(rng.integers(8, H - 60))
    video = f"[{{in}}][{{extra0}}]overlay={x}:{y}:shortest=1[{{out}}]"
    return Edit("watermark", {"x": x, "y": y}, video, extra_inputs=(png,))


def danmaku(rng: np.random.Generator, assets: Path) -> Edit:
    """Scrolling comment text across the picture."""
    strip = Image.new("RGBA", (1400, 80), (0, 0, 0, 0))
    draw = ImageDraw.Draw(strip)
    for i, text in enumerate(["2333333", "first!!", "this again lol", "awesome", "wow wow"]):
        draw.text((i * 280, (i % 3) * 25), text, fill=(255, 255, 255, 255))
    png = _write_png(assets, "danmaku.png", strip)
    y, speed = int(rng.integers(10, H - 90)), float(rng.uniform(60, 140))
    video = f"[{{in}}][{{extra0}}]overlay=x='{W}-t*{speed:.0f}':y={y}:shortest=1[{{out}}]"
    return Edit("danmaku", {"speed": speed}, video, extra_inputs=(png,))


def homography(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> np.ndarray:
    """(3, 3) projective map taking the 4 points `src` to `dst` (h33 = 1). Eight linear
    equations solved directly: no library here (OpenCV's would add a large dependency)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)


def _apply(h: np.ndarray, point: tuple[float, float]) -> tuple[float, float]:
    x, y, w = h @ np.array([point[0], point[1], 1.0])
    return float(x / w), float(y / w)


def filmed_screen(rng: np.random.Generator, assets: Path) -> Edit:
    """A phone filming the video on a monitor: the picture inside a bezel in a dim room,
    seen at an angle (keystone and tilt in one perspective map), a slow hand shake, moiré
    stripes, then the camera's vignette, softness and sensor noise."""
    scale = float(rng.uniform(0.7, 0.84))  # the screen's share of the frame, before the view
    sw, sh = _even(W * scale), _even(H * scale)
    sx = _pos((W - sw) / 2 + rng.uniform(-0.03, 0.03) * W)
    sy = _pos((H - sh) / 2 + rng.uniform(-0.03, 0.03) * H)
    room = np.linspace(rng.uniform(20, 60), rng.uniform(50, 110), H)[:, None, None]
    tint = rng.uniform(0.7, 1.1, 3)
    canvas = Image.fromarray(np.broadcast_to(room * tint, (H, W, 3)).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    bezel = int(rng.integers(8, 16))
    draw.rectangle([sx - bezel, sy - bezel, sx + sw + bezel, sy + sh + bezel], fill=(18, 18, 20))
    draw.rectangle([sx + sw // 2 - 40, sy + sh + bezel, sx + sw // 2 + 40, H], fill=(28, 28, 30))
    background = _write_png(assets, f"room-{sx}-{sy}-{sw}-{sh}-{bezel}.png", canvas)
    # The view: each corner pulled in (keystone), the whole turned by up to 6 degrees.
    for zoom in (1.12, 1.06, 1.0, 0.94, 0.88):
        pull = rng.uniform(0.0, 0.07, (4, 2)) * np.array([[1, 1], [-1, 1], [1, -1], [-1, -1]])
        angle = np.radians(rng.uniform(-6, 6))
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        unit = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
        corners = ((unit + pull - 0.5) * [W, H]) @ turn.T * zoom / [W, H] + 0.5
        h = homography([tuple(c) for c in unit], [tuple(c) for c in corners])
        screen = [(sx / W, sy / H), ((sx + sw) / W, (sy + sh) / H)]
        seen = [_apply(h, (a[0], b[1])) for a in screen for b in screen]
        if all(0.01 <= v <= 0.99 for point in seen for v in point):
            break
    shake = float(rng.uniform(2, 5))  # pixels
    period = float(rng.uniform(40, 90))  # frames
    points = ":".join(
        f"x{i}='{x * W:.1f}+{shake:.1f}*sin(on/{period:.0f}+{i})':"
        f"y{i}='{y * H:.1f}+{shake:.1f}*cos(on/{period * 1.3:.0f}+{i})'"
        for i, (x, y) in enumerate(corners)
    )
    period_px = float(rng.uniform(2.4, 4.0))
    tilt = float(rng.uniform(-0.3, 0.3))
    yy, xx = np.mgrid[0:H, 0:W]
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(tilt) + yy * np.sin(tilt)) / period_px)
    stripes = np.zeros((H, W, 4), np.uint8)
    stripes[..., 3] = (wave * rng.uniform(40, 80)).astype(np.uint8)
    moire = _write_png(assets, f"moire-{period_px:.2f}-{tilt:.2f}.png", Image.fromarray(stripes))
    video = (
        f"[{{in}}]scale={sw}:{sh}[fg{{n}}];[{{extra0}}]scale={W}:{H}[bg{{n}}];"
        f"[bg{{n}}][fg{{n}}]overlay={sx}:{sy}:shortest=1[screen{{n}}];"
        f"[screen{{n}}]perspective={points}:sense=destination:eval=frame[seen{{n}}];"
        f"[seen{{n}}][{{extra1}}]overlay=0:0:shortest=1,vignette=PI/5,gblur=sigma=0.7,"
        f"noise=alls=8:allf=t[{{out}}]"
    )
    place = ("homography", *(homography(
        [(0, 0), (1, 0), (0, 1), (1, 1)],
        [_apply(h, ((sx + dx * sw) / W, (sy + dy * sh) / H)) for dy in (0, 1) for dx in (0, 1)],
    ).reshape(-1).tolist()))  # fmt: skip
    params = {"scale": scale, "angle": float(np.degrees(angle)), "zoom": zoom, "shake": shake}
    return Edit("filmed_screen", params, video, place, extra_inputs=(background, moire))


def simple(name: str, chain: str, params: dict, **kwargs) -> Edit:
    return Edit(name, params, f"[{{in}}]{chain}[{{out}}]", **kwargs)


class EditKind(enum.Enum):
    BLACK_BARS = "black_bars"
    WHITE_BARS = "white_bars"
    BLUR_PAD = "blur_pad"
    CROP = "crop"
    ASPECT = "aspect"
    TEMPLATE = "template"
    PICTURE_IN_PICTURE = "picture_in_picture"
    SCREEN_RECORDING = "screen_recording"
    WATERMARK = "watermark"
    DANMAKU = "danmaku"
    FLIP = "flip"
    COLOR = "color"
    BLUR = "blur"
    NOISE = "noise"
    LOW_QUALITY = "low_quality"
    FRAME_RATE = "frame_rate"
    SPEED = "speed"
    FILMED_SCREEN = "filmed_screen"


@dataclass
class EditContext:
    """What edits may draw on: randomness, a folder for overlay images, a host video."""

    rng: np.random.Generator
    assets: Path
    host: str = ""  # an unrelated video, for picture-in-picture


def make_edit(kind: EditKind, ctx: EditContext) -> Edit:
    """A random instance of `kind`."""
    r = ctx.rng
    if kind is EditKind.BLACK_BARS:
        return bars(r, "black")
    if kind is EditKind.WHITE_BARS:
        return bars(r, "white")
    builders = {
        EditKind.BLUR_PAD: lambda: blur_pad(r),
        EditKind.CROP: lambda: crop(r),
        EditKind.ASPECT: lambda: aspect(r),
        EditKind.TEMPLATE: lambda: template(r, ctx.assets),
        EditKind.PICTURE_IN_PICTURE: lambda: picture_in_picture(r, ctx.host),
        EditKind.SCREEN_RECORDING: lambda: screen_recording(r, ctx.assets),
        EditKind.WATERMARK: lambda: watermark(r, ctx.assets),
        EditKind.DANMAKU: lambda: danmaku(r, ctx.assets),
        EditKind.FLIP: lambda: simple("flip", "hflip", {}, place=("flip",)),
        EditKind.COLOR: lambda: _color(r),
        EditKind.BLUR: lambda: _blur(r),
        EditKind.NOISE: lambda: _noise(r),
        EditKind.LOW_QUALITY: lambda: _low_quality(r),
        EditKind.FRAME_RATE: lambda: simple("frame_rate", "fps=10", {"fps": 10}),
        EditKind.SPEED: lambda: _speed(r),
        EditKind.FILMED_SCREEN: lambda: filmed_screen(r, ctx.assets),
    }
    return builders[kind]()


def _color(r: np.random.Generator) -> Edit:
    b, c, s = float(r.uniform(-0.15, 0.15)), float(r.uniform(0.7, 1.4)), float(r.uniform(0.4, 1.8))
    hue = float(r.uniform(-40, 40))
    chain = f"eq=brightness={b:.2f}:contrast={c:.2f}:saturation={s:.2f},hue=h={hue:.0f}"
    return simple("color", chain, {"brightness": b, "contrast": c, "saturation": s, "hue": hue})


def _blur(r: np.random.Generator) -> Edit:
    sigma = float(r.uniform(1.5, 4.0))
    return simple("blur", f"gblur=sigma={sigma:.1f}", {"sigma": sigma})


def _noise(r: np.random.Generator) -> Edit:
    amount = int(r.integers(15, 35))
    return simple("noise", f"noise=alls={amount}:allf=t", {"amount": amount})


def _low_quality(r: np.random.Generator) -> Edit:
    factor = int(r.integers(3, 5))
    return simple(
        "low_quality",
        f"scale={_even(W / factor)}:-2,scale={W}:{H}:flags=neighbor",
        {"factor": factor},
    )


def _speed(r: np.random.Generator) -> Edit:
    speed = float(r.choice([0.8, 0.9, 1.1, 1.25]))
    return simple("speed", f"setpts=PTS/{speed}", {"speed": speed}, speed=speed)


def chain_filters(edits: list[Edit], first_extra: int) -> tuple[str, list[str]]:
    """One filtergraph from [v0] to [vout] applying `edits` in order; extra input files are
    numbered from `first_extra` (ffmpeg input index)."""
    parts, extras = [], []
    label = "v0"
    for n, edit in enumerate(edits):
        labels = {}
        for k, path in enumerate(edit.extra_inputs):
            labels[f"extra{k}"] = f"{first_extra + len(extras)}:v"
            extras.append(path)
        out = "vout" if n == len(edits) - 1 else f"v{n + 1}"
        parts.append(edit.video.format(**{"in": label, "out": out, "n": n}, **labels))
        label = out
    if not edits:
        parts.append("[v0]null[vout]")
    return ";".join(parts), extras


def content_box(edits: list[Edit]) -> Box:
    """Where the copied picture ends up after all `edits`."""
    box: Box = (0.0, 0.0, 1.0, 1.0)
    for edit in edits:
        box = edit.box(box)
    return box


def speed_of(edits: list[Edit]) -> float:
    speed = 1.0
    for edit in edits:
        speed *= edit.speed
    return speed
