import torch

# tiny models: one thread is faster than two fighting other processes for two cores
torch.set_num_threads(1)
