//! `UpdateApi`'s update mask (AIP-134): which fields of an API a request changes.

use gatehouse_proto::v1 as pb;
use tonic::Status;

/// The fields of an API an `UpdateApi` changes (AIP-134 update mask).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ApiFields {
    pub(super) display_name: bool,
    pub(super) path: bool,
    pub(super) service_url: bool,
    pub(super) credentials: bool,
    pub(super) hostnames: bool,
    pub(super) validate_chain: bool,
    pub(super) validate_name: bool,
    pub(super) ca_ids: bool,
    pub(super) system_roots: bool,
    pub(super) subscription_required: bool,
    pub(super) subscription_key_header: bool,
}

impl ApiFields {
    /// From the mask's paths; without a mask, the fields set in `api`.
    pub(super) fn from_mask(mask: Option<&prost_types::FieldMask>, api: &pb::Api) -> Result<Self, Status> {
        let mut fields = Self::default();
        let paths: Vec<&str> = match mask {
            Some(mask) if !mask.paths.is_empty() => mask.paths.iter().map(String::as_str).collect(),
            _ => {
                let tls = api.backend_tls.as_ref();
                fields.display_name = !api.display_name.is_empty();
                fields.path = !api.path.is_empty();
                fields.service_url = !api.service_url.is_empty();
                fields.credentials = api.credentials.is_some();
                fields.hostnames = !api.hostnames.is_empty();
                fields.validate_chain = tls.is_some_and(|t| t.validate_certificate_chain.is_some());
                fields.validate_name = tls.is_some_and(|t| t.validate_certificate_name.is_some());
                fields.ca_ids = tls.is_some_and(|t| !t.ca_certificate_ids.is_empty());
                fields.system_roots = tls.is_some_and(|t| t.trust_system_roots.is_some());
                // Only `true` is visible without a mask: turning it off needs the mask path.
                fields.subscription_required = api.subscription_required;
                fields.subscription_key_header = !api.subscription_key_header.is_empty();
                if fields == Self::default() {
                    return Err(Status::invalid_argument("nothing to update: set update_mask or some fields of api"));
                }
                return Ok(fields);
            }
        };
        for path in paths {
            match path {
                "display_name" => fields.display_name = true,
                "path" => fields.path = true,
                "service_url" => fields.service_url = true,
                "credentials" => fields.credentials = true,
                "hostnames" => fields.hostnames = true,
                "backend_tls.validate_certificate_chain" => fields.validate_chain = true,
                "backend_tls.validate_certificate_name" => fields.validate_name = true,
                "backend_tls.ca_certificate_ids" => fields.ca_ids = true,
                "backend_tls.trust_system_roots" => fields.system_roots = true,
                "subscription_required" => fields.subscription_required = true,
                "subscription_key_header" => fields.subscription_key_header = true,
                "backend_tls" => {
                    (fields.validate_chain, fields.validate_name, fields.ca_ids, fields.system_roots) =
                        (true, true, true, true)
                }
                "*" => {
                    fields = Self {
                        display_name: true,
                        path: true,
                        service_url: true,
                        credentials: true,
                        hostnames: true,
                        validate_chain: true,
                        validate_name: true,
                        ca_ids: true,
                        system_roots: true,
                        subscription_required: true,
                        subscription_key_header: true,
                    }
                }
                other => {
                    return Err(Status::invalid_argument(format!(
                        "update_mask path '{}' is not an updatable field of an API",
                        gatehouse_shared::api::quote(other)
                    )));
                }
            }
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_fields_and_an_empty_mask_means_what_is_set() {
        let api = pb::Api { display_name: "x".into(), ..Default::default() };
        let mask = |paths: &[&str]| prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() };
        let fields = ApiFields::from_mask(Some(&mask(&["path", "backend_tls.ca_certificate_ids"])), &api).unwrap();
        assert!(fields.path && fields.ca_ids && !fields.display_name && !fields.validate_chain && !fields.hostnames);
        // An empty list in the patch with "hostnames" in the mask clears them.
        assert!(ApiFields::from_mask(Some(&mask(&["hostnames"])), &api).unwrap().hostnames);
        let on_host = pb::Api { hostnames: vec!["api.example.com".into()], ..Default::default() };
        assert!(ApiFields::from_mask(None, &on_host).unwrap().hostnames);
        let implied = ApiFields::from_mask(None, &api).unwrap();
        assert!(implied.display_name && !implied.path);
        let all = ApiFields::from_mask(Some(&mask(&["*"])), &api).unwrap();
        assert!(all.path && all.credentials && all.system_roots && all.hostnames);
        assert!(ApiFields::from_mask(Some(&mask(&["etag"])), &api).is_err());
        assert!(ApiFields::from_mask(None, &pb::Api::default()).is_err());
        let required = pb::Api { subscription_required: true, ..Default::default() };
        let implied = ApiFields::from_mask(None, &required).unwrap();
        assert!(implied.subscription_required && !implied.subscription_key_header);
        let off = ApiFields::from_mask(Some(&mask(&["subscription_required"])), &pb::Api::default()).unwrap();
        assert!(off.subscription_required, "the mask turns it off with the patch's false");
        assert!(ApiFields::from_mask(Some(&mask(&["*"])), &api).unwrap().subscription_key_header);
    }
}
