"""Colour transforms for a clip: one draw, one pixel-wise function for all
frames."""
from typing import Dict

import cv2
import numpy as np
from mmaction.datasets.transforms import ColorJitter
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform


@TRANSFORMS.register_module()
class VideoColorJitter(ColorJitter):
    """Torchvision-style colour jitter applied identically to every frame.

    Same arguments as MMAction2's ``ColorJitter`` (brightness, contrast and
    saturation factors drawn from ``1 +- value``, hue shift from
    ``+- hue`` of the colour circle), with three differences:

    * the order of the four adjustments is drawn per call, as in
      torchvision, not once when the transform is built;
    * contrast blends towards the mean grey level of the whole clip, not of
      each frame, so every frame gets the same pixel-wise function and the
      augmentation adds no temporal change of its own;
    * the hue shift is a fraction of OpenCV's 180-step hue circle and is
      computed in a wider integer type; MMAction2 1.2.0 scales it by 255
      and adds a negative Python int to a uint8 array, which numpy 2
      refuses (``OverflowError``) for every negative draw.

    Values are clamped to [0, 255] after each adjustment.

    Required keys: ``imgs`` (list of ``(H, W, 3)`` uint8 RGB frames).
    Modified keys: ``imgs``.
    """

    @staticmethod
    def adjust_hue(img: np.ndarray, factor: float) -> np.ndarray:
        """Rotate the hue of RGB ``img`` (``(..., H, W, 3)``, float in
        [0, 255]) by ``factor`` turns, ``factor`` in [-0.5, 0.5]."""
        shape = img.shape
        rgb = np.rint(img).astype(np.uint8).reshape(-1, shape[-2], 3)
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        shift = int(round(factor * 180))
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 180
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(shape).astype(
            np.float32)

    def transform(self, results: Dict) -> Dict:
        clip = np.stack(results['imgs']).astype(np.float32)
        # Python floats keep the arithmetic in float32 (numpy 2 promotes
        # float32 arrays times numpy float64 scalars to float64).
        brightness = float(np.random.uniform(*self.brightness))
        contrast = float(np.random.uniform(*self.contrast))
        saturation = float(np.random.uniform(*self.saturation))
        hue = float(np.random.uniform(*self.hue))
        for adjustment in np.random.permutation(4):
            if adjustment == 0:
                clip = clip * brightness
            elif adjustment == 1:
                clip = self.adjust_contrast(clip, contrast)
            elif adjustment == 2:
                clip = self.adjust_saturation(clip, saturation)
            else:
                clip = self.adjust_hue(clip, hue)
            clip = np.clip(clip, 0, 255)
        results['imgs'] = list(np.rint(clip).astype(np.uint8))
        return results


@TRANSFORMS.register_module()
class VideoRandomGrayscale(BaseTransform):
    """Turn a whole clip grey with probability ``prob`` (one draw per clip),
    keeping three channels.

    Luma weights are ITU-R BT.601 (0.299, 0.587, 0.114), as torchvision's,
    computed by OpenCV over the clip at once. MMCV's image
    ``RandomGrayscale`` broadcast over the frames (``TransformBroadcaster``
    with shared random parameters) gives the same clips up to rounding but
    sums in float64 frame by frame, far slower (``benchmarks/
    bench_data_path.py`` measures both).

    Required keys: ``imgs`` (list of ``(H, W, 3)`` uint8 RGB frames).
    Modified keys: ``imgs``.

    Args:
        prob: Probability of converting the clip.
    """

    def __init__(self, prob: float = 0.2) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(
                f'VideoRandomGrayscale: prob must be in [0, 1], got {prob!r}.')
        self.prob = prob

    def transform(self, results: Dict) -> Dict:
        if np.random.rand() < self.prob:
            clip = np.stack(results['imgs'])
            rows = clip.reshape(-1, clip.shape[-2], 3)
            grey = cv2.cvtColor(cv2.cvtColor(rows, cv2.COLOR_RGB2GRAY),
                                cv2.COLOR_GRAY2RGB)
            results['imgs'] = list(grey.reshape(clip.shape))
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'
