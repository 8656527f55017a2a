"""Train the auditor with GRPO (supplement A.2): `auditdm train-auditor` as a script, for `accelerate launch`.

    python recipes/train_auditor.py --config recipes/configs/auditor_world.yaml
    accelerate launch --config_file recipes/accelerate/multi_gpu_fsdp.yaml recipes/train_auditor.py \\
        --config recipes/configs/auditor_gemma3_4b.yaml --images hf:<image pool>
"""

import sys

from auditdm_eval.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-auditor", *sys.argv[1:]]))
