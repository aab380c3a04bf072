import sys

from benchmarks.gpu.search import main

sys.exit(main())
