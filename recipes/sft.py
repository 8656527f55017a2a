"""Fine-tune a target on audited pairs with a recipe config.

    python recipes/sft.py --config recipes/configs/gemma3_4b_lora.yaml --audited runs/gemma3-4b
    accelerate launch --config_file recipes/accelerate/multi_gpu_fsdp.yaml \\
        recipes/sft.py --config recipes/configs/gemma3_4b.yaml --audited runs/gemma3-4b
"""

import sys

from auditdm_eval.rectify.train import main

if __name__ == "__main__":
    sys.exit(main())
