import sys

from hopscope_probe.cli import main

sys.exit(main())
