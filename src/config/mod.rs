//! AWS configuration (XML, describe JSON, Generic text) and cgwd settings → one validated model.
