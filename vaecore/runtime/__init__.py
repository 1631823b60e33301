"""How computations run, apart from what they compute: CPU convolution kernels chosen by measurement
(`conv_autotune`), for training and inference alike. Depends on torch only."""
