import sys

from robustgate_client.cli import main

sys.exit(main())
