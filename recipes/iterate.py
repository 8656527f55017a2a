"""Audit -> fine-tune -> audit again, for N refinement iterations (supplement A.4).

    python recipes/iterate.py --target gemma3-4b --ensemble paligemma2-28b-448,qwen2.5-vl-7b,gemma3-27b \\
        --auditor gemma3-4b --images hf:<image pool> --recipe recipes/configs/gemma3_4b.yaml --iterations 2

Every ``auditdm audit`` flag, every recipe field and --iterations / --workdir (``--help`` lists them).
"""

import sys

from auditdm_eval.rectify.iterate import main

if __name__ == "__main__":
    sys.exit(main())
