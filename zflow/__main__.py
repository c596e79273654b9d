import sys

from zflow.cli.main import main

sys.exit(main())
