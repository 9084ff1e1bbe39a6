"""The DICOM node: a C-STORE SCP that puts received radiographs on the worklist.

``calcimg serve --dicom-port 11112 --ae-title CALCIMG`` runs it beside the web tool.
It accepts CR, DX (for presentation and for processing), MG and secondary-capture
storage in the common transfer syntaxes, answers C-ECHO, writes every received object
to the data directory (fsynced) before it answers the C-STORE, then queues it for
analysis. Optionally the DICOM results (SR, SEG) of each image are sent on to another
node by C-STORE (:class:`Forwarder`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from calcimg.errors import ConfigError, InputError
from calcimg.result import Result
from calcimg.web.service import Service
from calcimg.web.store import ImageRow

__all__ = [
    "STORAGE_SOP_CLASSES",
    "TRANSFER_SYNTAXES",
    "DicomNode",
    "Forwarder",
    "parse_destination",
]

log = logging.getLogger(__name__)

STORAGE_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.1.2": "Digital Mammography X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.2.1": "Digital Mammography X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image Storage",
}
"""Storage SOP classes the node accepts (PS3.4 B.5)."""

TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)
"""Transfer syntaxes accepted: everything ingest decodes (pydicom plugins)."""

_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation
_AE_TITLE = re.compile(r"^[ -~]{1,16}$")


def _check_ae_title(title: str, where: str) -> str:
    if not _AE_TITLE.match(title) or "\\" in title or not title.strip():
        raise ConfigError(
            f"{where}: AE title {title!r} is invalid; expected 1-16 printable ASCII "
            "characters without backslash"
        )
    return title.strip()


@dataclass(frozen=True, slots=True)
class Destination:
    """A remote DICOM node: AE title, host, port."""

    ae_title: str
    host: str
    port: int


def parse_destination(text: str) -> Destination:
    """Parse ``AE@host:port`` (the ``--forward`` option).

    Raises
    ------
    ConfigError
        When the text does not have that form.
    """
    m = re.match(r"^([^@]{1,16})@([^:]+):(\d{1,5})$", text)
    if not m or not 0 < int(m.group(3)) < 65536:
        raise ConfigError(f"--forward {text!r}: expected AE@host:port, e.g. PACS@10.0.0.5:104")
    return Destination(_check_ae_title(m.group(1), "--forward"), m.group(2), int(m.group(3)))


class Forwarder:
    """Send each image's DICOM results (SR, SEG) to a destination AE by C-STORE.

    Used as the service's ``after_analysis`` hook; the outcome is recorded in the
    worklist's ``forward_status`` column.
    """

    def __init__(self, service: Service, destination: Destination, *, ae_title: str) -> None:
        self.service = service
        self.destination = destination
        self.ae_title = ae_title

    def __call__(self, row: ImageRow, result: Result, written: list[Path]) -> None:
        if not written:
            return
        status = self.send(written)
        self.service.store.update(row.id, {"forward_status": status})

    def send(self, paths: Sequence[Path]) -> str:
        """C-STORE the files; returns ``sent N to AE@host:port`` or the error."""
        import pydicom
        from pynetdicom import AE

        ae = AE(ae_title=self.ae_title)
        ae.add_requested_context(_SR_STORAGE, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        ae.add_requested_context(_SEG_STORAGE, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        d = self.destination
        where = f"{d.ae_title}@{d.host}:{d.port}"
        assoc = ae.associate(d.host, d.port, ae_title=d.ae_title)
        if not assoc.is_established:
            log.warning("forwarding: no association with %s", where)
            return f"error: no association with {where}"
        sent = 0
        try:
            for path in paths:
                status = assoc.send_c_store(pydicom.dcmread(path))
                code = getattr(status, "Status", None)
                if code == 0x0000:
                    sent += 1
                else:
                    log.warning("forwarding %s to %s: status %s", path.name, where, code)
        finally:
            assoc.release()
        if sent != len(paths):
            return f"error: sent {sent} of {len(paths)} to {where}"
        return f"sent {sent} to {where}"


class DicomNode:
    """A C-STORE SCP (and C-ECHO) in front of a :class:`~calcimg.web.service.Service`.

    Parameters
    ----------
    service : Service
        Receives every stored object (written to disk first, then analysed).
    port : int
        TCP port to listen on (0 picks a free one; see :attr:`port` after start).
    ae_title : str
        This node's AE title.
    host : str
        Address to bind; loopback by default.
    """

    def __init__(
        self, service: Service, *, port: int, ae_title: str = "CALCIMG", host: str = "127.0.0.1"
    ) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.ae_title = _check_ae_title(ae_title, "--ae-title")
        self._server: Any = None

    def start(self) -> None:
        """Listen in background threads (returns at once)."""
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = 0  # unlimited: large films arrive in fewer PDUs
        ae.add_supported_context(Verification)
        for uid in STORAGE_SOP_CLASSES:
            ae.add_supported_context(uid, list(TRANSFER_SYNTAXES))
        handlers: list[Any] = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo)]
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self.port = int(self._server.server_address[1])
        log.info("DICOM node %s listening on %s:%d", self.ae_title, self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_echo(self, event: Any) -> int:
        return 0x0000

    def _on_store(self, event: Any) -> int:
        # The encoded dataset as received (preamble, file meta, data set): nothing is
        # decoded here, so storing a large film costs little more than the network.
        try:
            data = event.encoded_dataset(include_meta=True)
        except Exception:
            log.exception("C-STORE: cannot encode the received dataset")
            return 0xC210  # Cannot understand
        calling = event.assoc.requestor.ae_title
        sop_uid = event.request.AffectedSOPInstanceUID
        try:
            row = self.service.receive(
                data, original_name=f"{sop_uid}.dcm", origin=f"dicom {calling}".strip()
            )
        except InputError:
            log.exception("C-STORE: %s refused", sop_uid)
            return 0xC210
        except OSError:
            log.exception("C-STORE: cannot write %s", sop_uid)
            return 0xA700  # Out of resources
        log.info("C-STORE from %s: %s -> %s", calling, sop_uid, row.id)
        return 0x0000
