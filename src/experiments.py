"""Run, check and compare experiment plans (experiments/*.yaml); see sentinelle/experiments/.

python src/experiments.py run experiments/model-zoo.yaml --jobs 2
python src/experiments.py check experiments/*.yaml
python src/experiments.py compare experiments/model-zoo.yaml
"""

import sys

from sentinelle.experiments.command_line import main

if __name__ == "__main__":
    sys.exit(main())
