#!/usr/bin/env bash
# Multi-node GRPO with a dedicated vLLM generation node (TRL's vLLM "server" mode), for any Slurm cluster.
#
# Layout: the last node of the allocation runs `trl vllm-serve` (one engine over VLLM_TP GPUs: TRL 1.16
# supports data parallelism in the server only for MoE models, so dense models get --data_parallel_size 1);
# every other node runs `accelerate launch` with one training process per GPU. Training rank 0 sends
# prompts to the server over HTTP and pushes updated weights to it after every optimizer step.
#
# Nothing site-specific is hard-coded: give partition/account/time on the sbatch line and the rest as
# environment variables, e.g.
#   sbatch --nodes=3 --partition=<partition> --account=<account> --time=24:00:00 \
#       --export=ALL,RECIPE=recipes/Qwen2.5-Math-7B/r1_zero.yaml recipes/slurm/grpo_multinode.sh
#
# Environment variables (defaults in brackets):
#   RECIPE               GRPO recipe [recipes/Qwen2.5-Math-7B/r1_zero.yaml]
#   ACCELERATE_CONFIG    accelerate config for the training nodes [recipes/accelerate_configs/zero3.yaml]
#   GPUS_PER_NODE        GPUs on every node [8]
#   VLLM_PORT            HTTP port of the vLLM server [8000]
#   VLLM_TP              tensor parallel size of the vLLM engine (must divide the model's heads) [1]
#   VLLM_WAIT            seconds to wait for the vLLM server's /health before giving up [900]
#   MASTER_PORT          rendezvous port of the training processes [29500]
#   EXTRA_ARGS           extra `--field value` overrides for the recipe [none]
#   ENV_SETUP            command run first on every node, e.g. "source .venv/bin/activate" [none]
#
#SBATCH --job-name=r1-trl-grpo
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
#SBATCH --output=%x-%j.out

set -euo pipefail

RECIPE=${RECIPE:-recipes/Qwen2.5-Math-7B/r1_zero.yaml}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-recipes/accelerate_configs/zero3.yaml}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
VLLM_PORT=${VLLM_PORT:-8000}
VLLM_TP=${VLLM_TP:-1}
VLLM_WAIT=${VLLM_WAIT:-900}
MASTER_PORT=${MASTER_PORT:-29500}
EXTRA_ARGS=${EXTRA_ARGS:-}
ENV_SETUP=${ENV_SETUP:-true}

mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
if (( ${#NODES[@]} < 2 )); then
    echo "need at least 2 nodes (training + vLLM), got ${#NODES[@]}" >&2
    exit 1
fi
VLLM_NODE=${NODES[-1]}
TRAIN_NODES=("${NODES[@]:0:${#NODES[@]}-1}")
NUM_TRAIN_NODES=${#TRAIN_NODES[@]}
MASTER_ADDR=${TRAIN_NODES[0]}
TRAIN_NODELIST=$(IFS=,; echo "${TRAIN_NODES[*]}")
# The server must serve the recipe's starting model; read with the environment's own python (after ENV_SETUP).
MODEL=$(bash -c "$ENV_SETUP >/dev/null 2>&1; python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))[\"model_name_or_path\"])' '$RECIPE'")

echo "vLLM server: $VLLM_NODE:$VLLM_PORT serving $MODEL"
echo "training: $NUM_TRAIN_NODES node(s) x $GPUS_PER_NODE GPUs ($TRAIN_NODELIST), rendezvous $MASTER_ADDR:$MASTER_PORT"

srun --kill-on-bad-exit=1 --nodes=1 --ntasks=1 --nodelist="$VLLM_NODE" bash -c "
    $ENV_SETUP
    trl vllm-serve --model '$MODEL' --tensor_parallel_size $VLLM_TP --data_parallel_size 1 \
        --host 0.0.0.0 --port $VLLM_PORT
" &
VLLM_PID=$!
trap 'kill $VLLM_PID 2>/dev/null || true' EXIT

# Training starts only once the server answers (loading a 7B model can take minutes).
waited=0
until curl -sf "http://$VLLM_NODE:$VLLM_PORT/health" >/dev/null; do
    if ! kill -0 "$VLLM_PID" 2>/dev/null; then
        echo "the vLLM server on $VLLM_NODE exited before answering; see its log above" >&2
        exit 1
    fi
    if (( waited >= VLLM_WAIT )); then
        echo "the vLLM server on $VLLM_NODE:$VLLM_PORT did not answer /health within ${VLLM_WAIT}s" >&2
        exit 1
    fi
    sleep 10
    waited=$((waited + 10))
done
echo "vLLM server ready after ${waited}s"

# SLURM_PROCID (the machine rank) must expand on each training node, hence the escaped \$.
srun --kill-on-bad-exit=1 --nodes="$NUM_TRAIN_NODES" --ntasks="$NUM_TRAIN_NODES" --nodelist="$TRAIN_NODELIST" bash -c "
    $ENV_SETUP
    accelerate launch --config_file '$ACCELERATE_CONFIG' \
        --num_machines $NUM_TRAIN_NODES --num_processes $((NUM_TRAIN_NODES * GPUS_PER_NODE)) \
        --machine_rank \$SLURM_PROCID --main_process_ip $MASTER_ADDR --main_process_port $MASTER_PORT \
        --rdzv_backend c10d --same_network \
        -m r1_trl.cli grpo --config '$RECIPE' \
        --use_vllm true --vllm_mode server --vllm_server_host $VLLM_NODE --vllm_server_port $VLLM_PORT \
        $EXTRA_ARGS
"
