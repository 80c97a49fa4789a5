"""Train a TULIP text encoder: stage 1 distils a CLIP text tower into a RoPE student (captions
only), stage 2 fine-tunes it with images on long and short captions at 248 tokens.

    accelerate launch training/distill_tulip.py distill --teacher openai/clip-vit-large-patch14 \
        --data captions.json --output-dir student                       # GPUs, several nodes
    accelerate launch training/distill_tulip.py expand --student student \
        --base-model openai/clip-vit-large-patch14 --data captions.json --image-root IMAGES \
        --output-dir tulip
    torchrun --nproc_per_node 2 training/distill_tulip.py distill ... --cpu   # CPU processes

Run with STAGE --help for every option; the defaults are the TULIP paper's.
"""

import sys

from longclip_diffusers.training.tulip_distillation import main

if __name__ == "__main__":
    sys.exit(main())
