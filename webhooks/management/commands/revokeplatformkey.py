from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from webhooks.models import PlatformKey, hash_api_key


class Command(BaseCommand):
    help = (
        "Revoke a platform key, named by its id (pkey_…), the key itself (hp_…) or its "
        "first characters as listed; prints the revoked key's id last."
    )

    def add_arguments(self, parser):
        parser.add_argument("key", metavar="KEY")

    def handle(self, key, **options):
        keys = PlatformKey.objects.filter(revoked_at__isnull=True)
        if key.startswith("pkey_"):
            found = keys.filter(public_id=key)
        elif len(key) > 16:
            found = keys.filter(key_hash=hash_api_key(key))
        else:
            found = keys.filter(prefix__startswith=key) if len(key) >= 6 else keys.none()
        found = list(found[:2])
        if not found:
            raise CommandError(f"No active platform key {key!r}.")
        if len(found) > 1:
            raise CommandError(f"{key!r} names more than one key: give its pkey_… id.")
        (platform_key,) = found
        platform_key.revoked_at = timezone.now()
        platform_key.save(update_fields=["revoked_at"])  # a save: the API hears of it
        self.stderr.write(f"Revoked {platform_key.prefix}… ({platform_key.name}).")
        self.stdout.write(platform_key.public_id)
