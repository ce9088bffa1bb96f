from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TraceLocationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOCATION_TYPE_UNSPECIFIED: _ClassVar[TraceLocationType]
    LOCATION_TYPE_PERMANENT_OTHER: _ClassVar[TraceLocationType]
    LOCATION_TYPE_TEMPORARY_OTHER: _ClassVar[TraceLocationType]
    LOCATION_TYPE_PERMANENT_RETAIL: _ClassVar[TraceLocationType]
    LOCATION_TYPE_PERMANENT_FOOD_SERVICE: _ClassVar[TraceLocationType]
    LOCATION_TYPE_PERMANENT_CRAFT: _ClassVar[TraceLocationType]
    LOCATION_TYPE_PERMANENT_WORKPLACE: _ClassVar[TraceLocationType]
    LOCATION_TYPE_PERMANENT_EDUCATIONAL_INSTITUTION: _ClassVar[TraceLocationType]
    LOCATION_TYPE_PERMANENT_PUBLIC_BUILDING: _ClassVar[TraceLocationType]
    LOCATION_TYPE_TEMPORARY_CULTURAL_EVENT: _ClassVar[TraceLocationType]
    LOCATION_TYPE_TEMPORARY_CLUB_ACTIVITY: _ClassVar[TraceLocationType]
    LOCATION_TYPE_TEMPORARY_PRIVATE_EVENT: _ClassVar[TraceLocationType]
    LOCATION_TYPE_TEMPORARY_WORSHIP_SERVICE: _ClassVar[TraceLocationType]
LOCATION_TYPE_UNSPECIFIED: TraceLocationType
LOCATION_TYPE_PERMANENT_OTHER: TraceLocationType
LOCATION_TYPE_TEMPORARY_OTHER: TraceLocationType
LOCATION_TYPE_PERMANENT_RETAIL: TraceLocationType
LOCATION_TYPE_PERMANENT_FOOD_SERVICE: TraceLocationType
LOCATION_TYPE_PERMANENT_CRAFT: TraceLocationType
LOCATION_TYPE_PERMANENT_WORKPLACE: TraceLocationType
LOCATION_TYPE_PERMANENT_EDUCATIONAL_INSTITUTION: TraceLocationType
LOCATION_TYPE_PERMANENT_PUBLIC_BUILDING: TraceLocationType
LOCATION_TYPE_TEMPORARY_CULTURAL_EVENT: TraceLocationType
LOCATION_TYPE_TEMPORARY_CLUB_ACTIVITY: TraceLocationType
LOCATION_TYPE_TEMPORARY_PRIVATE_EVENT: TraceLocationType
LOCATION_TYPE_TEMPORARY_WORSHIP_SERVICE: TraceLocationType

class QRCodePayload(_message.Message):
    __slots__ = ("version", "location_data", "crowd_notifier_data", "vendor_data")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_DATA_FIELD_NUMBER: _ClassVar[int]
    CROWD_NOTIFIER_DATA_FIELD_NUMBER: _ClassVar[int]
    VENDOR_DATA_FIELD_NUMBER: _ClassVar[int]
    version: int
    location_data: TraceLocation
    crowd_notifier_data: CrowdNotifierData
    vendor_data: bytes
    def __init__(self, version: _Optional[int] = ..., location_data: _Optional[_Union[TraceLocation, _Mapping]] = ..., crowd_notifier_data: _Optional[_Union[CrowdNotifierData, _Mapping]] = ..., vendor_data: _Optional[bytes] = ...) -> None: ...

class TraceLocation(_message.Message):
    __slots__ = ("version", "description", "address", "start_timestamp", "end_timestamp")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    START_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    END_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    version: int
    description: str
    address: str
    start_timestamp: int
    end_timestamp: int
    def __init__(self, version: _Optional[int] = ..., description: _Optional[str] = ..., address: _Optional[str] = ..., start_timestamp: _Optional[int] = ..., end_timestamp: _Optional[int] = ...) -> None: ...

class CrowdNotifierData(_message.Message):
    __slots__ = ("version", "public_key", "cryptographic_seed")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CRYPTOGRAPHIC_SEED_FIELD_NUMBER: _ClassVar[int]
    version: int
    public_key: bytes
    cryptographic_seed: bytes
    def __init__(self, version: _Optional[int] = ..., public_key: _Optional[bytes] = ..., cryptographic_seed: _Optional[bytes] = ...) -> None: ...

class CWALocationData(_message.Message):
    __slots__ = ("version", "type", "default_check_in_length_in_minutes")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CHECK_IN_LENGTH_IN_MINUTES_FIELD_NUMBER: _ClassVar[int]
    version: int
    type: TraceLocationType
    default_check_in_length_in_minutes: int
    def __init__(self, version: _Optional[int] = ..., type: _Optional[_Union[TraceLocationType, str]] = ..., default_check_in_length_in_minutes: _Optional[int] = ...) -> None: ...

class CheckInRecord(_message.Message):
    __slots__ = ("start_interval_number", "period", "transmission_risk_level")
    START_INTERVAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TRANSMISSION_RISK_LEVEL_FIELD_NUMBER: _ClassVar[int]
    start_interval_number: int
    period: int
    transmission_risk_level: int
    def __init__(self, start_interval_number: _Optional[int] = ..., period: _Optional[int] = ..., transmission_risk_level: _Optional[int] = ...) -> None: ...

class CheckInProtectedReport(_message.Message):
    __slots__ = ("location_id_hash", "iv", "encrypted_check_in_record", "mac")
    LOCATION_ID_HASH_FIELD_NUMBER: _ClassVar[int]
    IV_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_CHECK_IN_RECORD_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    location_id_hash: bytes
    iv: bytes
    encrypted_check_in_record: bytes
    mac: bytes
    def __init__(self, location_id_hash: _Optional[bytes] = ..., iv: _Optional[bytes] = ..., encrypted_check_in_record: _Optional[bytes] = ..., mac: _Optional[bytes] = ...) -> None: ...

class TraceWarningPackage(_message.Message):
    __slots__ = ("interval_number", "region", "check_in_protected_reports")
    INTERVAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CHECK_IN_PROTECTED_REPORTS_FIELD_NUMBER: _ClassVar[int]
    interval_number: int
    region: str
    check_in_protected_reports: _containers.RepeatedCompositeFieldContainer[CheckInProtectedReport]
    def __init__(self, interval_number: _Optional[int] = ..., region: _Optional[str] = ..., check_in_protected_reports: _Optional[_Iterable[_Union[CheckInProtectedReport, _Mapping]]] = ...) -> None: ...
