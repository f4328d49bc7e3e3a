"""The sandbox: a real Kubernetes control plane on 127.0.0.1 with simulated GPU node pools.

quantfleet is an operator, so it is only as tested as the API server it runs against. This
package builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK from the
Go module proxy (`build`), generates PKI in Python (`pki`), runs the processes (`cluster`),
and registers fake GPU nodes whose labels match what NVIDIA GPU Feature Discovery and the AMD
node labeller put on real nodes (`fleet`). KWOK plays node heartbeats and pod lifecycles from
the stage files in `stages/`, including a *simulated* calibration result for calibration pods.
"""
