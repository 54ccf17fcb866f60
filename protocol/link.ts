/**
 * The provisioning link's line speed, written once for the firmware, the
 * host and the emulator: NodeMCU's console default
 * (CONFIG_ESP_CONSOLE_UART_BAUDRATE, nodemcu-build/sdkconfig.fobkit).
 */
export const LINK_BAUD = 115200;
