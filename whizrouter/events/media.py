"""The media object: what an image, video, audio, voice note, document or sticker carries.

Media messages (``whizrouter.events.media_messages``) hold one, and so can an ad ``Referral``.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from whizrouter.events.wire import WireModel


class StickerMetadata(WireModel):
    """Sticker pack information; on the wire the keys are dash-separated (``sticker-pack-id``).

    Attributes:
        sticker_pack_id: the pack id.
        sticker_pack_name: the pack name.
        sticker_pack_publisher: who published the pack.
        emojis: the emojis the sticker stands for.
        ios_app_store_link: the pack's App Store link.
        android_app_store_link: the pack's Play Store link.
        is_first_party_sticker: ``1`` for WhatsApp's own stickers, ``0`` otherwise.
    """

    model_config = ConfigDict(alias_generator=lambda name: name.replace("_", "-"))

    sticker_pack_id: str | None = None
    sticker_pack_name: str | None = None
    sticker_pack_publisher: str | None = None
    emojis: list[str] = Field(default_factory=list)
    ios_app_store_link: str | None = None
    android_app_store_link: str | None = None
    is_first_party_sticker: int | None = None


class Media(WireModel):
    """A media object: image, video, audio, voice note, document or sticker.

    Attributes:
        id: the media id to download it with.
        mime_type: its MIME type.
        sha256: the file's hash.
        caption: image, video and document captions.
        filename: documents only.
        url: Cloud only, a download URL (still needs the API key).
        link: a public link, when the media was given by link.
        voice: Cloud only, ``True`` on a voice note sent as ``audio``.
        animated: Cloud stickers only.
        metadata: on-premises stickers only, the sticker pack.
    """

    id: str
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    url: str | None = None
    link: str | None = None
    voice: bool | None = None
    animated: bool | None = None
    metadata: StickerMetadata | None = None
