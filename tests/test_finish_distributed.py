import torch.distributed as dist

from r1_trl.distributed import finish_distributed


def test_finish_distributed_tears_the_group_down_and_is_a_no_op_without_one(tmp_path):
    finish_distributed()  # no group: nothing to do, no error
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    finish_distributed()
    assert not dist.is_initialized()
