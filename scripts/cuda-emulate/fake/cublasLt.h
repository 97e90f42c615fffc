// scripts/cuda-emulate: the one cuBLAS name cuda_check.h needs.
#pragma once
enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0 };
