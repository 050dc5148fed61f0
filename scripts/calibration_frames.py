"""The frames int8 calibration runs on (streamstyle/engines/calibration/): every STEP-th frame of the sample clips,
centre-cropped to 16:9 and shrunk to 640x360, as JPEG (quality 90).

python scripts/calibration_frames.py [STEP]
"""

import sys
from pathlib import Path

import cv2

from streamstyle.io.images import write_image
from streamstyle.io.media import read_frames

REPO = Path(__file__).resolve().parent.parent
CLIPS = ("bikes.mp4", "city_2s.mpg", "bigbuckbunny_2s.mp4")
WIDTH, HEIGHT = 640, 360


def sixteen_by_nine(image):
    height, width = image.shape[:2]
    if width * HEIGHT > height * WIDTH:
        keep = height * WIDTH // HEIGHT
        return image[:, (width - keep) // 2 : (width + keep) // 2]
    keep = width * HEIGHT // WIDTH
    return image[(height - keep) // 2 : (height + keep) // 2]


def main(step: int) -> None:
    target = REPO / "streamstyle" / "engines" / "calibration"
    for clip in CLIPS:
        for index, image in enumerate(read_frames(REPO / "samples" / "clips" / clip)):
            if index % step == 0:
                small = cv2.resize(sixteen_by_nine(image), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
                write_image(small, target / f"{Path(clip).stem}_{index:03d}.jpg", quality=90)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 25)
