import sys

from zoscli.main import main

sys.exit(main())
