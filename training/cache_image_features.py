"""Cache the image features of a frozen vision tower for ``train_longclip.py --image-features``.

    accelerate launch training/cache_image_features.py --base-model M --data D --output-dir DIR
    torchrun --nproc_per_node 2 training/cache_image_features.py ... --cpu   # CPU processes

The same as ``longclip-diffusers cache-image-features``; run with --help for every option.
"""

import sys

from longclip_diffusers.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["cache-image-features", *sys.argv[1:]]))
