"""Aligning a hand-held bracket onto its reference photo before the merge (docs/alignment.md).

HDR-GAN's merging blocks undo objects that move, not a camera that moved. Each non-reference
photo is registered to the reference on reduced copies, both brought to a common exposure in
linear radiance and compared only where both are informative (neither clipped nor at noise
level): SIFT features of the contrast-normalised images, matched and fitted by RANSAC, give a
homography, which OpenCV's ECC refines on the pixels it explains, again without those that still
disagree (moving objects); where the features find none, ECC searches coarse to fine from
several starts (a rigid motion, then a homography). Where the brighter photo is mostly clipped,
the same search also runs with the darker photo raised to the brighter one's exposure and
clipped as it clips, so that the clipped areas' edges show the motion. `"auto"` keeps whichever
motion leaves the smallest difference on the same pixels for all (where most is clipped, among
those that first make the photos clip in the same places), and no motion unless that beats not
aligning, so it never does worse than not aligning by that measure. The reference never moves;
the merge then reads the warped photos a band of rows at a time (`AlignedBracket`), so a
streamed, tiled merge keeps its bounded memory.
"""

import concurrent.futures
import dataclasses
import math
import typing

import cv2
import numpy as np

from hdr_gan_tf.arrays import as_unit_float, row_reader
from hdr_gan_tf.imaging import GAMMA
from hdr_gan_tf.settings import ConfigError

class AlignMode(typing.NamedTuple):
    """A way of registering the photos.

    Attributes:
      name: as the programs and the page offer it.
      summary: one line for help texts.
      tries: the motions estimated (`estimate_motion`), in order; none: the photos as they are.
      keeps: the fitted motions it may use (None: any that `tries` gives).
    """
    name: str
    summary: str
    tries: tuple
    keeps: typing.Optional[tuple]


ALIGN_MODES = {mode.name: mode for mode in (
    AlignMode("auto", "a homography (from matched features, refined by ECC) or a rigid motion, "
              "whichever agrees best, or none where nothing beats not aligning",
              ("homography", "translation"), None),
    AlignMode("homography", "a homography", ("homography",), ("homography",)),
    AlignMode("translation", "a shift", ("translation",), ("translation",)),
    AlignMode("none", "the photos as they are (from a tripod; aligned data sets)", (), ()),
)}
# Longest side of the reduced copies the motion is estimated on, and of the coarsest level.
ESTIMATE_SIDE = 1024
COARSEST_SIDE = 128
# The fewest pixels each way of a reduced copy that a motion is estimated on: a strip narrower
# than its reduction factor reduces to nothing, which OpenCV's warps refuse.
MIN_ESTIMATE_SIDE = 8
# A pixel tells nothing of the scene where any channel is clipped or its grey is at noise level.
CLIPPED = 0.97
DARK = 0.02
# At most this many refits, each on the pixels the last fit explains, per coarse level: each
# moves the fit further from a moving object's pull (until it no longer moves).
REFITS = 8
# An estimate that moves a corner further than this share of the diagonal is not believed.
MAX_CORNER_SHIFT = 0.2
# Features matched between two photos (SIFT), and the fewest consistent matches believed.
FEATURES = 4000
MIN_MATCHES = 15
# The fewest pixels (of the reduced copies) two photos must both show well for a motion to be
# judged: fewer, and there is too little in common to tell aligning from not.
MIN_COMMON = 400
# Where this share of the brighter photo is clipped, motions are also sought on the clipped
# areas' edges, and a motion must bring the share of pixels where only one photo clips below
# this fraction of what it is unaligned.
HEAVILY_CLIPPED = 0.5
CLIP_AGREEMENT = 0.9
# ... and come within this factor of the best motion's share. A motion moving a corner by more
# than this share of the diagonal (more than a hand usually moves between frames) must bring the
# clipping and the difference on exposed pixels below these fractions of no motion's.
CLIP_NEAR_BEST = 1.15
LARGE_MOTION = 0.06
LARGE_MOTION_CLIPPING = 0.6
LARGE_MOTION_DIFFERENCE = 0.9


@dataclasses.dataclass(frozen=True)
class Alignment:
    """How one photo of a bracket maps onto the reference.

    Attributes:
      homography: `[3, 3]` float64, a reference pixel `(x, y, 1)` to the same scene point in the
        photo (full resolution, pixel centres at integers).
      method: the motion used: "homography" (ECC's), "features" (the matched features'
        homography), "rigid", "translation" or "none" ("reference" for the reference itself).
      requested: the `--align` mode asked for.
      confidence: ECC's correlation coefficient of the motion used (1 for the reference and
        `--align=none`, None for the features' motion and for a photo left unaligned).
      residual, residual_unaligned: the RMS difference (gamma-encoded, at the common exposure,
        on the reduced copies) with this motion and with none, on the same pixels (`compared`);
        None where the photos have too little in common to judge.
      fallback: why a photo was left unaligned, or which motion failed (e.g. the homography)
        before a simpler one was used; None when nothing failed.
      uncovered: share of the reference frame this photo does not cover once warped (filled
        from the reference, `AlignedBracket`).
      found_on: where the motion was found: "exposed pixels" (both photos at their common
        exposure) or "clipped edges" (the darker photo raised to the brighter one's exposure
        and clipped as it clips); None for no motion.
      clipping, clipping_unaligned: where the brighter photo is mostly clipped, the share of
        pixels where only one photo clips with this motion and with none (`clip_mismatch`);
        None otherwise.
    """
    homography: np.ndarray
    method: str
    requested: str
    confidence: float = 1.0
    residual: float = 0.0
    residual_unaligned: float = 0.0
    fallback: object = None
    uncovered: float = 0.0
    found_on: object = None
    clipping: object = None
    clipping_unaligned: object = None

    @property
    def moves(self):
        return not np.array_equal(self.homography, np.eye(3))

    def record(self):
        """The sidecar's fields for this photo."""
        def number(value, digits):  # JSON has no infinity: an unmeasurable value is null
            return round(float(value), digits) if value is not None and math.isfinite(
                value) else None

        return {"homography_reference_to_photo": self.homography.tolist(),
                "alignment": {"method": self.method, "requested": self.requested,
                              "confidence": number(self.confidence, 4),
                              "residual": number(self.residual, 6),
                              "residual_unaligned": number(self.residual_unaligned, 6),
                              "fallback": self.fallback, "found_on": self.found_on,
                              "clipping": number(self.clipping, 6),
                              "clipping_unaligned": number(self.clipping_unaligned, 6),
                              "uncovered": number(self.uncovered, 6)}}


def check_align(mode):
    """ConfigError naming `align` unless `mode` is one of `ALIGN_MODES`; the mode."""
    if mode not in ALIGN_MODES:
        raise ConfigError(f"one of {', '.join(ALIGN_MODES)}, not {mode!r}", field="align")
    return ALIGN_MODES[mode]


def reduced_copy(ldrs, side=ESTIMATE_SIDE, factor=None):
    """`(copy, factor)`: the bracket as `[3, h, w, 3]` float32 in [0, 1], each side divided by
    the integer `factor` (means of `factor`² blocks, read a band at a time): the given one, or
    the smallest that brings the longest side to at most `side`."""
    shape, read = row_reader(ldrs)
    height, width = shape[1:3]
    factor = factor or max(1, math.ceil(max(height, width) / side))
    h, w = height // factor, width // factor
    copy = np.empty((shape[0], h, w, 3), np.float32)
    step = max(1, 256 // factor)
    for top in range(0, h, step):
        bottom = min(h, top + step)
        band = as_unit_float(read(top * factor, bottom * factor))[:, :, :w * factor]
        copy[:, top:bottom] = band.reshape(shape[0], bottom - top, factor, w, factor, 3).mean(
            axis=(2, 4))
    return copy, factor


def _scale(homography, factor, offset):
    """`homography` between images whose pixel `x` becomes `factor * x + offset`."""
    a = np.array([[factor, 0, offset], [0, factor, offset], [0, 0, 1]], np.float64)
    return a @ homography @ np.linalg.inv(a)


def common_exposure(photo, time, reference, reference_time):
    """Grey images of the reference and the photo at the shorter of their exposures (gamma
    encoded, float32) and the masks (uint8 255) of the pixels each can be compared on."""
    common = min(time, reference_time)
    out = []
    for ldr, t in ((reference, reference_time), (photo, time)):
        linear = np.mean(np.power(ldr, GAMMA), axis=-1) * np.float32(common / t)
        valid = (ldr.max(axis=-1) < CLIPPED) & (ldr.mean(axis=-1) > DARK)
        out.append((np.power(linear, 1 / GAMMA).astype(np.float32),
                    valid.astype(np.uint8) * 255))
    return out


def brighter_exposure(photo, time, reference, reference_time):
    """Grey images of the reference and the photo at the longer of their exposures (gamma
    encoded, float32), the shorter one's light raised and clipped channel by channel as that
    exposure clips it; the masks (uint8 255) of the pixels each can be compared on (all of the
    brighter photo, the darker one's not black); and the masks of the pixels clipped there.
    Clipped areas then match too, so a photo that is mostly clipped still shows its edges."""
    longer = max(time, reference_time)
    out = []
    for ldr, t in ((reference, reference_time), (photo, time)):
        raised = np.power(ldr, GAMMA) * np.float32(longer / t)
        clipped = raised.max(axis=-1) >= CLIPPED ** GAMMA
        linear = np.minimum(raised, 1.0).mean(axis=-1)
        valid = ldr.mean(axis=-1) > DARK if t < longer else np.ones(ldr.shape[:2], bool)
        out.append((np.power(linear, 1 / GAMMA).astype(np.float32),
                    valid.astype(np.uint8) * 255, clipped.astype(np.uint8) * 255))
    return out


def clip_mismatch(ref_clipped, photo_clipped, motions):
    """`{name: share}` of the reference frame's pixels (those the photo covers under every
    motion) where the photo warped by each motion is clipped and the reference at that
    exposure is not, or the other way round."""
    shape = ref_clipped.shape
    inside = np.ones(shape, bool)
    for h in motions.values():
        inside &= _warp(np.full(shape, 255, np.uint8), h, shape) == 255
    if inside.sum() < MIN_COMMON:
        return None
    return {name: float(((_warp(photo_clipped, h, shape) > 127) != (ref_clipped > 0))[inside]
                        .mean()) for name, h in motions.items()}


def _warp(image, homography, shape, border=cv2.BORDER_CONSTANT):
    return cv2.warpPerspective(image, homography, (shape[1], shape[0]),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border)


def compared(reference, ref_mask, photo, photo_mask, motions):
    """`{name: RMS difference}` of the reference and the photo warped by each of `motions`
    (`{name: homography}`, the identity among them), all on the same pixels: those valid in the
    reference and in the photo under every motion, less those that disagree under every motion
    (more than three times its median difference, dilated by 2 pixels: moving objects,
    parallax; a pixel one motion explains stays, so that none is favoured). None where fewer
    than `MIN_COMMON` pixels remain: too little in common to judge.

    One mask for all, untrimmed: a trimmed mean or each motion's own mask lets a wrong motion
    win by what it leaves out, by a fraction of a pixel."""
    shape = reference.shape
    warped = {name: _warp(photo, h, shape) for name, h in motions.items()}
    common = ref_mask > 0
    for h in motions.values():
        common &= _warp(photo_mask, h, shape) == 255
    if common.sum() < MIN_COMMON:
        return None
    disagreeing = np.ones(reference.shape, bool)
    for image in warped.values():
        difference = np.abs(reference - image)
        disagreeing &= difference > max(3 * float(np.median(difference[common])), 0.02)
    common &= cv2.dilate(disagreeing.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    if common.sum() < MIN_COMMON:
        return None
    return {name: float(np.sqrt(np.mean((reference[common] - image[common]) ** 2)))
            for name, image in warped.items()}


def _pyramid(image, levels):
    out = [image]
    for _ in range(levels - 1):
        out.append(cv2.resize(out[-1], (out[-1].shape[1] // 2, out[-1].shape[0] // 2),
                              interpolation=cv2.INTER_AREA))
    return out[::-1]


def _ecc(template, image, template_mask, image_mask, warp, motion):
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    start = warp[:2] if motion != cv2.MOTION_HOMOGRAPHY else warp
    score, found = cv2.findTransformECCWithMask(
        template, image, template_mask, image_mask, start.astype(np.float32), motion, criteria,
        5)
    return score, np.vstack([found, [0, 0, 1]]) if found.shape[0] == 2 else found


def _initial_shifts(reference, ref_mask, photo, photo_mask, count=3):
    """Starting motions: no motion, and up to `count` translations from an exhaustive search,
    best first. The search correlates the reference's centre (`MAX_CORNER_SHIFT` of each side
    in from the borders) with the photo at every shift (OpenCV's normalised `matchTemplate`),
    on gradient magnitudes where each photo is valid, and keeps local maxima at least 3 pixels
    apart. Correlation rather than phase correlation, whose whitening lets periodic texture
    (bricks, tiles) win; several starts because such texture still makes rivals, which ECC
    then tells apart."""
    if not ((ref_mask > 0).any() and (photo_mask > 0).any()):
        return [np.eye(3)]

    def edges(image, mask):
        # Gradient magnitude, zero where either pixel of a difference is invalid: the edge
        # of a clipped sky, which sits at the same place in both copies, must not vote.
        gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
        inside = cv2.erode((mask > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
        return (np.sqrt(gx * gx + gy * gy) * inside).astype(np.float32)

    reference, photo = edges(reference, ref_mask), edges(photo, photo_mask)
    h, w = reference.shape
    my, mx = int(h * MAX_CORNER_SHIFT / 2), int(w * MAX_CORNER_SHIFT / 2)
    scores = cv2.matchTemplate(photo, reference[my:h - my, mx:w - mx], cv2.TM_CCOEFF_NORMED)
    shifts = []
    for _ in range(count):
        _, best, _, (x, y) = cv2.minMaxLoc(scores)
        if not np.isfinite(best) or best <= -1:
            break
        shifts.append(np.array([[1, 0, x - mx], [0, 1, y - my], [0, 0, 1]], np.float64))
        scores[max(0, y - 3):y + 4, max(0, x - 3):x + 4] = -2
    # No motion too: a hand-held camera moves little, and periodic texture can outvote it.
    return shifts + [np.eye(3)] if not any(np.array_equal(m, np.eye(3)) for m in shifts) else (
        shifts)


def _contrast_normalised(image, sigma=8.0):
    """`image` with its local mean removed and its local contrast made one (Gaussian windows of
    `sigma`), as 8 bits: dark and bright parts of a scene then show their texture alike."""
    mean = cv2.GaussianBlur(image, (0, 0), sigma)
    centred = image - mean
    spread = np.sqrt(cv2.GaussianBlur(centred * centred, (0, 0), sigma) + 1e-6)
    return np.clip(centred / spread * 40 + 128, 0, 255).astype(np.uint8)


def feature_motion(reference, ref_mask, photo, photo_mask):
    """A homography from reference pixels to photo pixels found by matching SIFT features of
    the contrast-normalised images (each where it is valid) and RANSAC (MAGSAC), or None with
    too few consistent matches. Unlike ECC it needs no start, and a patch of plain sky cannot
    win it over: it is the check on ECC where most of one photo is clipped."""
    sift = cv2.SIFT_create(nfeatures=FEATURES)
    found = []
    for image, mask in ((reference, ref_mask), (photo, photo_mask)):
        inside = cv2.erode((mask > 0).astype(np.uint8) * 255, np.ones((7, 7), np.uint8))
        found.append(sift.detectAndCompute(_contrast_normalised(image), inside))
    (ref_points, ref_features), (photo_points, photo_features) = found
    if ref_features is None or photo_features is None or min(len(ref_points),
                                                             len(photo_points)) < 2:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(ref_features, photo_features, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < MIN_MATCHES:
        return None
    source = np.float32([ref_points[m.queryIdx].pt for m in good])
    target = np.float32([photo_points[m.trainIdx].pt for m in good])
    homography, inliers = cv2.findHomography(source, target, cv2.USAC_MAGSAC, 1.0)
    if homography is None or inliers.sum() < MIN_MATCHES:
        return None
    return homography / homography[2, 2]


def _from_features(reference, ref_mask, photo, photo_mask):
    """`(candidates, failures)`: the homography of matched features (`feature_motion`) and,
    from it, ECC's homography on the pixels it explains, refitted without those that still
    disagree (`_robust_ecc`); `{}` where the features find no believable motion."""
    features = feature_motion(reference, ref_mask, photo, photo_mask)
    if features is None:
        return {}, ["features: too few consistent matches"]
    if not _believable(features, reference.shape):
        return {}, ["features: implausible motion"]
    candidates, failures = {"features": (features, None)}, []
    args = (reference, photo, ref_mask, photo_mask)
    kept = _inliers(args, features)
    try:
        if kept is None:
            raise cv2.error("too few pixels agree under the features' motion")
        score, refined = _robust_ecc((reference, photo, kept, photo_mask), features,
                                     cv2.MOTION_HOMOGRAPHY, refits=2)
        refined = refined / refined[2, 2]
        if _believable(refined, reference.shape):
            candidates["homography"] = (refined, float(score))
        else:
            failures.append("homography: implausible motion")
    except cv2.error:
        failures.append("homography: did not converge from the features' motion")
    return candidates, failures


def _mapped_corners(homography, shape):
    """`[4, 3]` homogeneous points where `homography` takes the corners of a `shape` image."""
    h, w = shape
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], np.float64)
    return corners @ homography.T


def _corner_shift(a, b, shape):
    """The largest distance between where homographies `a` and `b` take a corner of `shape`."""
    pa, pb = _mapped_corners(a, shape), _mapped_corners(b, shape)
    return float(np.abs(pa[:, :2] / pa[:, 2:] - pb[:, :2] / pb[:, 2:]).max())


def _inliers(args, warp):
    """The template mask without the pixels that still disagree under `warp` (more than three
    times the median difference, dilated by 2 pixels: moving objects, parallax, the photo's
    border), or None where too few would remain."""
    template, image, template_mask, _ = args
    diff = np.abs(template - _warp(image, warp, template.shape))
    valid = template_mask > 0
    limit = max(3 * float(np.median(diff[valid])), 0.02) if valid.any() else 0.02
    outliers = cv2.dilate((diff > limit).astype(np.uint8), np.ones((5, 5), np.uint8))
    kept = np.where(outliers > 0, 0, template_mask).astype(np.uint8)
    return kept if (kept > 0).mean() > 0.05 else None


def _robust_ecc(args, warp, kind, refits=REFITS):
    """ECC from `warp`, then again on the pixels each fit explains (`_inliers`) until the fit
    stops moving (a twentieth of a pixel) or `refits` times: `(score, warp)`."""
    score, warp = _ecc(*args, warp, kind)
    for _ in range(refits):
        kept = _inliers(args, warp)
        if kept is None:
            break
        before = warp
        score, warp = _ecc(args[0], args[1], kept, args[3], warp, kind)
        if _corner_shift(before, warp, args[0].shape) < 0.05:
            break
    return score, warp


def estimate_motion(reference, ref_mask, photo, photo_mask, motion):
    """Fits of the motion from reference pixels to photo pixels of these (reduced) images,
    coarse to fine: `{name: (homography, ecc score)}`. `motion="translation"` fits a
    translation; `"homography"` a rigid motion (rotation and translation) and, from it and on
    the pixels it explains, a homography. Raises cv2.error where ECC does not converge."""
    levels = max(1, int(math.log2(min(reference.shape) / (COARSEST_SIDE * 3 / 4))) + 1)
    pyramids = [_pyramid(image, levels) for image in (reference, photo)]
    masks = [[(m > 127).astype(np.uint8) * 255 for m in _pyramid(mask, levels)]
             for mask in (ref_mask, photo_mask)]
    args = [(pyramids[0][k], pyramids[1][k], masks[0][k], masks[1][k]) for k in range(levels)]
    coarse = "translation" if motion == "translation" else "rigid"
    kinds = {"translation": cv2.MOTION_TRANSLATION, "rigid": cv2.MOTION_EUCLIDEAN,
             "homography": cv2.MOTION_HOMOGRAPHY}
    # From each starting motion, the coarse motion on the coarsest level (cheap); the best ECC
    # score goes on, level by level. On every level ECC runs again and again on the pixels
    # the motion explains (`_robust_ecc`): a large moving object otherwise pulls the fit to a
    # wrong motion that no finer level undoes.
    tried = []
    for warp in _initial_shifts(args[0][0], args[0][2], args[0][1], args[0][3]):
        try:
            tried.append(_robust_ecc(args[0], warp, kinds[coarse]))
        except cv2.error:
            continue
    # A start may converge to a motion no hand could make (a far shift that leaves a patch of
    # sky to correlate): only believable ones compete.
    tried = [t for t in tried if _believable(t[1], args[0][0].shape)]
    if not tried:
        raise cv2.error("ECC did not converge to a believable motion from any starting shift")
    score, warp = max(tried, key=lambda t: t[0])
    for level in range(1, levels):
        # The finest level costs most: fewer refits there, the coarser ones did the work.
        score, warp = _robust_ecc(args[level], _scale(warp, 2, 0.5), kinds[coarse],
                                  REFITS if level < levels - 1 else 2)
    fits = {coarse: (warp, score)}
    if motion == "homography":
        # Eight parameters on the finest level only, from the rigid motion and on the pixels
        # it explains: moving objects and the photo's borders would pull them anywhere.
        kept = _inliers(args[-1], warp)
        if kept is None:
            raise ValueError("too few pixels agree under the rigid motion to fit a homography")
        fits["homography"] = _robust_ecc((args[-1][0], args[-1][1], kept, args[-1][3]), warp,
                                         kinds["homography"], refits=2)[::-1]
    return {name: (warp / warp[2, 2], float(score)) for name, (warp, score) in fits.items()}


def _believable(homography, shape):
    """False for a motion that flips, folds or moves a corner past `MAX_CORNER_SHIFT`."""
    mapped, corners = _mapped_corners(homography, shape), _mapped_corners(np.eye(3), shape)
    if np.any(mapped[:, 2] <= 0) or not np.all(np.isfinite(mapped)):
        return False
    shift = np.linalg.norm(mapped[:, :2] / mapped[:, 2:] - corners[:, :2], axis=1).max()
    return bool(shift <= MAX_CORNER_SHIFT * math.hypot(*shape)
                and np.linalg.det(homography[:2, :2]) > 0)


def uncovered_share(homography, shape):
    """Share of a `shape` (H, W) reference frame whose points map outside the photo (same
    size): one minus the area where the frame and the photo's outline mapped back overlap."""
    h, w = shape
    frame = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    back = cv2.perspectiveTransform(frame[None], np.linalg.inv(homography))[0]
    area, _ = cv2.intersectConvexConvex(frame, back.astype(np.float32))
    return float(max(0.0, 1 - area / max((w - 1) * (h - 1), 1)))


def _candidates(reference, ref_mask, photo, photo_mask, tries, keeps):
    """`(candidates, failures)`: the motions worth judging between these two views, features
    first, ECC's search where features find none."""
    candidates, failures = {}, []
    if keeps is None or "homography" in keeps:
        found, failures = _from_features(reference, ref_mask, photo, photo_mask)
        # `--align=homography` keeps ECC's homography only; `auto` the features' one too.
        candidates = {name: fit for name, fit in found.items()
                      if keeps is None or name in keeps}
    for motion in tries:
        if candidates:  # found already (a translation is a special case of a rigid motion)
            break
        try:
            fits = estimate_motion(reference, ref_mask, photo, photo_mask, motion)
        except (cv2.error, ValueError, np.linalg.LinAlgError):
            failures.append(f"{motion}: did not converge")
            continue
        for name, (warp, score) in fits.items():
            if keeps is not None and name not in keeps:
                continue
            if not _believable(warp, reference.shape):
                failures.append(f"{name}: implausible motion")
                continue
            candidates[name] = (warp, score)
    return candidates, failures


def align_photo(reduced_photo, time, reduced_reference, reference_time, mode, factor,
                full_shape):
    """The `Alignment` of one photo from reduced copies (`reduced_copy`'s `factor`) of it and
    of the reference, under `mode` (one of `ALIGN_MODES`)."""
    identity = np.eye(3)
    tries, keeps = ALIGN_MODES[mode].tries, ALIGN_MODES[mode].keeps
    if not tries:
        return Alignment(identity, "none", mode)
    if min(reduced_reference.shape[:2]) < MIN_ESTIMATE_SIDE:
        height, width = reduced_reference.shape[:2]
        return Alignment(identity, "none", mode, None, fallback=(
            f"too narrow to align ({width}x{height} pixels once reduced by {factor}; "
            f"at least {MIN_ESTIMATE_SIDE} are needed each way)"))
    (reference, ref_mask), (photo, photo_mask) = common_exposure(
        reduced_photo, time, reduced_reference, reference_time)
    brighter = brighter_exposure(reduced_photo, time, reduced_reference, reference_time)
    heavily_clipped = max((b[2] > 0).mean() for b in brighter) >= HEAVILY_CLIPPED
    candidates, failures = {}, []
    views = [((reference, ref_mask), (photo, photo_mask), "")]
    if heavily_clipped:
        views.append((brighter[0][:2], brighter[1][:2], " (clipped edges)"))
    for (v_ref, v_ref_mask), (v_photo, v_photo_mask), tag in views:
        found, fails = _candidates(v_ref, v_ref_mask, v_photo, v_photo_mask, tries, keeps)
        candidates.update({name + tag: fit for name, fit in found.items()})
        failures += [f + tag for f in fails]
    motions = {name: warp for name, (warp, _) in candidates.items()}
    scores = compared(reference, ref_mask, photo, photo_mask, {**motions, "none": identity})
    clipping = (clip_mismatch(brighter[0][2], brighter[1][2], {**motions, "none": identity})
                if heavily_clipped and motions else None)
    pairs = {}
    if clipping is not None and scores is None:
        # Too few pixels are exposed under every motion at once: each motion the clipping lets
        # through is judged against no motion on the pixels the two share, by their ratio.
        for name, warp in motions.items():
            if clipping[name] < CLIP_AGREEMENT * clipping["none"]:
                pair = compared(reference, ref_mask, photo, photo_mask,
                                {name: warp, "none": identity})
                if pair is not None:
                    pairs[name] = pair
        scores = ({name: pair[name] / pair["none"] for name, pair in pairs.items()}
                  | {"none": 1.0}) if pairs else None
    best, reason = _choose(motions, scores, clipping, reference.shape)
    # The residuals recorded: on the pixels shared by every motion, else by this one and none.
    shown = pairs.get(best, {} if pairs else scores or {})
    unaligned = shown.get("none")
    clipped_unaligned = clipping["none"] if clipping else None
    if best is None:
        return Alignment(identity, "none", mode, None, unaligned, unaligned,
                         "; ".join(failures + [reason]), clipping=clipped_unaligned,
                         clipping_unaligned=clipped_unaligned)
    full = _scale(candidates[best][0], factor, (factor - 1) / 2)
    method, _, view = best.partition(" (")
    return Alignment(full, method, mode, candidates[best][1], shown.get(best), unaligned,
                     "; ".join(failures) or None, uncovered_share(full, full_shape),
                     "clipped edges" if view else "exposed pixels",
                     clipping[best] if clipping else None, clipped_unaligned)


def _choose(motions, scores, clipping, shape):
    """`(name, None)` of the motion to keep among `motions` (homographies of `shape` images),
    or `(None, why none)`, from `compared`'s `scores` and, where the brighter photo is mostly
    clipped, `clip_mismatch`'s `clipping` (each with "none", no motion)."""
    if clipping is not None:
        # Too little is exposed in both to judge by alone: a motion must first make the photos
        # clip in the same places, nearly as alike as the best motion does and clearly more
        # than none does; then the exposed pixels choose among those, as below.
        floor = min(clipping.values())
        passing = [n for n in motions if clipping[n] < CLIP_AGREEMENT * clipping["none"]
                   and clipping[n] <= CLIP_NEAR_BEST * floor]
        if not passing:
            best = min(motions, key=clipping.get)
            return None, (f"no motion makes the photos clip alike clearly better than none "
                          f"(pixels clipped in one only: {best} {clipping[best]:.3g}, unaligned "
                          f"{clipping['none']:.3g})")
        motions = {n: motions[n] for n in passing}
    if scores is None:
        return None, (f"too little in common to judge a motion (under {MIN_COMMON} pixels well "
                      f"exposed in both at their common exposure)")
    best = min((n for n in motions if n in scores), key=scores.get, default=None)
    if best is None:
        return None, "no motion converged"
    # Aligning must beat not aligning, by more than interpolation's own smoothing can explain.
    if not scores[best] < 0.97 * scores["none"]:
        return None, f"{best} left {scores[best]:.4g}, not less than {scores['none']:.4g} unaligned"
    # Where most is clipped, chance agreements of large clipped areas can pass both checks by a
    # little: a motion larger than a hand usually makes must pass them by much.
    if (clipping is not None
            and _corner_shift(motions[best], np.eye(3), shape) > LARGE_MOTION * math.hypot(*shape)
            and not (clipping[best] < LARGE_MOTION_CLIPPING * clipping["none"]
                     and scores[best] < LARGE_MOTION_DIFFERENCE * scores["none"])):
        return None, (f"{best} moves the photo far on weak evidence (pixels clipped in one only: "
                      f"{clipping[best]:.3g}, unaligned {clipping['none']:.3g}; difference "
                      f"{scores[best]:.4g}, unaligned {scores['none']:.4g})")
    return best, None


def align_bracket(ldrs, exposure_bias, mode, log=None, estimate_side=ESTIMATE_SIDE):
    """Aligns the short and long photos of a bracket (`[3, H, W, 3]` array, or spooled) onto
    the reference (index 1), estimating on copies whose longest side is at most
    `estimate_side`. Returns `(AlignedBracket or ldrs itself, [3 Alignment])`."""
    shape, _ = row_reader(ldrs)
    times = 2.0 ** (np.asarray(exposure_bias, np.float64) - np.min(exposure_bias))
    if not check_align(mode).tries:
        return ldrs, [Alignment(np.eye(3), "reference" if i == 1 else "none", mode)
                      for i in range(3)]
    reduced, factor = reduced_copy(ldrs, estimate_side)
    # The two photos are aligned independently: side by side they use both cores.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        short, long = pool.map(lambda i: align_photo(reduced[i], times[i], reduced[1], times[1],
                                                     mode, factor, shape[1:3]), (0, 2))
    alignments = [short, Alignment(np.eye(3), "reference", mode), long]
    for i in (0, 2):
        found = alignments[i]
        if log:
            log(f"Aligned the {('short', '', 'long')[i]} photo: {found.method}"
                + (f" (uncovered {found.uncovered:.1%}, filled from the reference)"
                   if found.uncovered else "")
                + (f"; {found.fallback}" if found.fallback else ""))
    if not any(a.moves for a in alignments):
        return ldrs, alignments
    return AlignedBracket(ldrs, times, [a.homography for a in alignments]), alignments


class AlignedBracket:
    """A bracket read a band of rows at a time with its photos warped onto the reference.

    `rows(first, last)` returns `[3, last - first, W, 3]` float32 in [0, 1]: the reference's rows
    as they are, and for each other photo what its homography maps those reference pixels to
    (bilinear), reading only the photo's rows it needs. Where that point falls outside the photo,
    the pixel is the reference's value brought to the photo's exposure,
    `min(1, I_ref ** 2.2 * t / t_ref) ** (1 / 2.2)`: the merge then sees agreeing photos there.
    """

    def __init__(self, ldrs, times, homographies, reference=1):
        self.shape, _ = row_reader(ldrs)
        self._ldrs = ldrs
        self._times, self._homographies, self._reference = times, homographies, reference

    def _photo_rows(self, i, first, last):
        """Rows `first .. last - 1` of photo `i` alone (a spooled photo is read alone)."""
        if hasattr(self._ldrs, "rows"):
            return self._ldrs.rows(first, last, images=[i])[0]
        return np.asarray(self._ldrs)[i, first:last]

    def rows(self, first, last):
        height, width = self.shape[1:3]
        first, last = max(first, 0), min(last, height)
        out = np.empty((self.shape[0], last - first, width, 3), np.float32)
        # Photos that stay are read as they are; each warped one only where its rows are needed.
        for i, h in enumerate(self._homographies):
            if i == self._reference or np.array_equal(h, np.eye(3)):
                out[i] = as_unit_float(self._photo_rows(i, first, last))
        reference = out[self._reference]
        xs = np.arange(width, dtype=np.float64)[None, :]
        ys = np.arange(first, last, dtype=np.float64)[:, None]
        for i, h in enumerate(self._homographies):
            if i == self._reference or np.array_equal(h, np.eye(3)):
                continue
            depth = h[2, 0] * xs + h[2, 1] * ys + h[2, 2]
            x = (h[0, 0] * xs + h[0, 1] * ys + h[0, 2]) / depth
            y = (h[1, 0] * xs + h[1, 1] * ys + h[1, 2]) / depth
            covered = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
            if covered.any():
                top = max(0, int(math.floor(y[covered].min())) - 1)
                bottom = min(height, int(math.ceil(y[covered].max())) + 2)
                source = as_unit_float(self._photo_rows(i, top, bottom))
                shifted = np.array([[1, 0, 0], [0, 1, -top], [0, 0, 1]]) @ h @ np.array(
                    [[1, 0, 0], [0, 1, first], [0, 0, 1]])
                out[i] = cv2.warpPerspective(source, shifted, (width, last - first),
                                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                             borderMode=cv2.BORDER_REPLICATE)
            outside = ~covered
            if outside.any():
                ratio = np.float32(self._times[i] / self._times[self._reference])
                out[i][outside] = np.minimum(1.0, reference[outside] ** np.float32(GAMMA)
                                             * ratio) ** np.float32(1 / GAMMA)
        return out
