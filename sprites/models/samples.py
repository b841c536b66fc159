"""What the usage sampler last saw of each sprite's VM (sprites/services/sampling.py).

One row per sprite: the previous observation a new one is compared with to bill the time
between them that nothing ClawDirector caused explains (cause `user`). Not a status: the
sprite's status and `vm_state` stay on `UserSprite`; this is the meter's own memory, locked
row by row so that overlapping samplers bill each window once.
"""

from django.db import models


class VMSample(models.Model):
    sprite = models.OneToOneField("sprites.UserSprite", on_delete=models.CASCADE, related_name="vm_sample")
    observed_at = models.DateTimeField()
    running = models.BooleanField()
    # `last_warming_at` as the API reported it then: a later value means the VM went warm since.
    warmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "sprite_vm_sample"

    def __str__(self) -> str:
        return f"{self.sprite_id} {'running' if self.running else 'asleep'} at {self.observed_at:%H:%M:%S}"
