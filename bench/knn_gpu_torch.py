"""PyTorch baseline for bench/b_knn_gpu.sh: the same exact cosine top-k as
kernels/cuda_knn.cu (FP32 matrix products, TF32 off) with torch.mm + torch.topk on
the GPU over the vectors bench_knn_gpu wrote, in the same query blocks.
Prints the median time and the agreement of the returned rows with ours."""
import sys, time
import numpy as np
import torch

n, nq, d, k, reps = (int(a) for a in sys.argv[1:6])
torch.backends.cuda.matmul.allow_tf32 = False
db = torch.from_numpy(np.fromfile("db.f32", dtype=np.float32).reshape(n, d)).cuda()
q = torch.from_numpy(np.fromfile("q.f32", dtype=np.float32).reshape(nq, d)).cuda()
QB = 2048

def search():
    out = []
    for i in range(0, nq, QB):
        s = torch.mm(q[i:i + QB], db.t())
        out.append(torch.topk(s, k, dim=1).indices)
    r = torch.cat(out)
    torch.cuda.synchronize()
    return r

search()
ts = []
for _ in range(reps):
    t0 = time.perf_counter(); r = search(); ts.append(time.perf_counter() - t0)
ts.sort()
ours = np.fromfile("rows.i64", dtype=np.int64).reshape(nq, k)
agree = np.mean([len(set(a) & set(b)) / k for a, b in zip(ours, r.cpu().numpy())])
print(f"torch mm+topk: median {ts[len(ts)//2]:.4f} s; top-{k} row agreement with dv2 {agree:.4f}")
print(f"BASE {ts[len(ts)//2]:.6f}")
