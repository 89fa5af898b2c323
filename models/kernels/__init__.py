"""Fused training kernels the models' engines call: a CPU autograd kernel for the real and complex
recurrences (``fused``), one for the gated cells (``fused_gated``) and a Triton kernel for CUDA
(``triton_rnn``, imported only where Triton is installed). They register no model."""
