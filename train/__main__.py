"""`python -m train` is `mstrain`; `torchrun --nproc-per-node N -m train ...` trains with DDP."""

from train.cli import main

if __name__ == "__main__":
    main()
