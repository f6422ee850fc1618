"""Media messages: image, video, audio, voice note, document and sticker.

Each holds a ``Media`` object under the key named by its type. A Cloud ``audio`` with
``voice: true`` is a ``VoiceMessage``, as an on-premises ``voice`` is.
"""

from __future__ import annotations

from typing import Literal

from whizrouter.events.media import Media
from whizrouter.events.message import Message


class ImageMessage(Message):
    """An image; ``image`` holds the media id and caption."""

    type: Literal["image"]
    image: Media


class VideoMessage(Message):
    """A video; ``video`` holds the media id and caption."""

    type: Literal["video"]
    video: Media


class AudioMessage(Message):
    """An attached audio file in ``audio`` (voice notes are ``VoiceMessage``)."""

    type: Literal["audio"]
    audio: Media


class VoiceMessage(Message):
    """A voice note: on-premises ``type: voice``, Cloud ``audio`` with ``voice: true``.

    ``type`` is ``"voice"`` in both shapes; a Cloud voice note also keeps its ``audio`` key
    as an extra field.

    Attributes:
        voice: the media.
    """

    type: Literal["voice"]
    voice: Media


class DocumentMessage(Message):
    """A document; ``document`` holds the media id, filename and caption."""

    type: Literal["document"]
    document: Media


class StickerMessage(Message):
    """A sticker; ``sticker`` has pack ``metadata`` on-premises, ``animated`` in Cloud."""

    type: Literal["sticker"]
    sticker: Media
