"""Fine-tune a target on audited pairs with a recipe: ours + trl's SFTConfig + trl's ModelConfig.

    python recipes/sft.py --config recipes/configs/gemma3_4b_lora.yaml --audited runs/gemma3-4b
    python recipes/sft.py --config recipes/configs/gemma3_4b.yaml --audited runs/gemma3-4b --learning_rate 1e-6
    accelerate launch --config_file recipes/accelerate/multi_gpu_fsdp.yaml \\
        recipes/sft.py --config recipes/configs/gemma3_4b.yaml --audited runs/gemma3-4b

Every field is a flag (``--help`` lists them) and overrides the ``--config`` file.
"""

import sys

from auditdm_eval.rectify.train import main

if __name__ == "__main__":
    sys.exit(main())
