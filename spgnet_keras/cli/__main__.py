import sys

from spgnet_keras.cli import main

sys.exit(main())
