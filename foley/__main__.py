import sys

from foley.cli import main

sys.exit(main())
