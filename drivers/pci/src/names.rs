// SPDX-License-Identifier: MIT OR Apache-2.0
//! Human names of class codes, for an lspci-like listing (PCI Code and ID Assignment
//! Specification, section 1).

/// The name of a (class, subclass) pair; the class's name when the subclass is unknown.
pub const fn class_name(class: u8, subclass: u8) -> &'static str {
    match (class, subclass) {
        (0x00, 0x01) => "VGA compatible unclassified device",
        (0x00, _) => "Unclassified device",
        (0x01, 0x00) => "SCSI storage controller",
        (0x01, 0x01) => "IDE interface",
        (0x01, 0x05) => "ATA controller",
        (0x01, 0x06) => "SATA controller",
        (0x01, 0x07) => "Serial Attached SCSI controller",
        (0x01, 0x08) => "Non-Volatile memory controller",
        (0x01, _) => "Mass storage controller",
        (0x02, 0x00) => "Ethernet controller",
        (0x02, _) => "Network controller",
        (0x03, 0x00) => "VGA compatible controller",
        (0x03, _) => "Display controller",
        (0x04, 0x01) => "Audio device",
        (0x04, 0x03) => "Audio device",
        (0x04, _) => "Multimedia controller",
        (0x05, 0x00) => "RAM memory",
        (0x05, _) => "Memory controller",
        (0x06, 0x00) => "Host bridge",
        (0x06, 0x01) => "ISA bridge",
        (0x06, 0x04) => "PCI bridge",
        (0x06, 0x80) => "Bridge",
        (0x06, _) => "Bridge",
        (0x07, 0x00) => "Serial controller",
        (0x07, _) => "Communication controller",
        (0x08, 0x00) => "PIC",
        (0x08, 0x05) => "SD Host controller",
        (0x08, 0x80) => "System peripheral",
        (0x08, _) => "Generic system peripheral",
        (0x09, _) => "Input device controller",
        (0x0c, 0x03) => "USB controller",
        (0x0c, 0x05) => "SMBus",
        (0x0c, _) => "Serial bus controller",
        (0x0d, _) => "Wireless controller",
        (0x10, _) => "Encryption controller",
        (0x11, _) => "Signal processing controller",
        (0x12, _) => "Processing accelerators",
        (0xff, _) => "Unassigned class",
        _ => "Unknown class",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_q35_classes_have_lspci_names() {
        assert_eq!(class_name(0x06, 0x00), "Host bridge");
        assert_eq!(class_name(0x06, 0x01), "ISA bridge");
        assert_eq!(class_name(0x01, 0x06), "SATA controller");
        assert_eq!(class_name(0x0c, 0x05), "SMBus");
        assert_eq!(class_name(0x03, 0x00), "VGA compatible controller");
        assert_eq!(class_name(0x02, 0x00), "Ethernet controller");
        assert_eq!(class_name(0x01, 0x42), "Mass storage controller");
        assert_eq!(class_name(0x77, 0x00), "Unknown class");
    }
}
