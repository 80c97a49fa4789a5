"""Fine-tune a CLIP model into Long-CLIP (stretching + primary component matching).

    accelerate launch training/train_longclip.py --base-model DIR --data captions.json \
        --image-root IMAGES --output-dir OUT                     # GPUs, several nodes
    torchrun --nproc_per_node 2 training/train_longclip.py ... --cpu   # several CPU processes

Run with --help for every option; the defaults are the Long-CLIP paper's.
"""

import sys

from longclip_diffusers.training.longclip import main

if __name__ == "__main__":
    sys.exit(main())
